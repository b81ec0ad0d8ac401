"""The registry: timm-safe names with aliases, fnmatch listing, temporary registration, the
model metadata, and no import of the zoo from the registry."""

from __future__ import annotations

import ast
import json

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest
from torch import nn

import igc.models
from igc.cli import main
from igc.errors import IGCError
from igc.models.registry import (
    NAME_RE,
    create_model,
    list_models,
    model_entry,
    register_model,
    temporary_model,
)

MODELS = Path(igc.models.__file__).parent
ALIASES = {"igcv2_1.0": "igcv2_100", "igcv2_0.5": "igcv2_050", "igcv2_0.25": "igcv2_025",
           "mobilenetv1_1.0": "mobilenetv1_100", "mobilenetv1_0.5": "mobilenetv1_050",
           "mobilenetv1_0.25": "mobilenetv1_025", "igcv3_1.0": "igcv3_100",
           "igcv3_0.7": "igcv3_070", "mobilenetv2_1.0": "mobilenetv2_100",
           "mobilenetv2_0.7": "mobilenetv2_070"}


def test_canonical_names_are_timm_safe_and_aliases_resolve():
    from igc.models.small import SMALL_MODELS

    names = list_models()
    assert len(names) == 87 + len(SMALL_MODELS)
    assert all(NAME_RE.match(n) and "." not in n for n in names)
    for alias, name in ALIASES.items():
        assert model_entry(alias) is model_entry(name) and alias not in names
        assert model_entry(name).aliases == (alias,)
    assert create_model("igcv2_0.25").pretrained_cfg["architecture"] == "igcv2_025"


def test_list_models_matches_shell_patterns_only():
    assert list_models("igcv2") == []  # no substring matching
    pattern = list_models("igcv2_c64_d*", exclude_filters="*_fmnist")
    assert pattern == ["igcv2_c64_d20", "igcv2_c64_d20_tiny", "igcv2_c64_d26",
                       "igcv2_c64_d26_tiny", "igcv2_c64_d8", "igcv2_c64_d8_tiny"]
    assert list_models("igcv2_1.0") == ["igcv2_100"]  # through its alias, listed once
    assert list_models("*_1.0") == ["igcv2_100", "igcv3_100", "mobilenetv1_100",
                                    "mobilenetv2_100"]
    assert list_models(["igcv3_*", "mobilenetv2_*"], exclude_filters="*_070") == [
        "igcv3_100", "mobilenetv2_100"]
    assert list_models("*_tiny", exclude_filters=["igcv1*", "igcv2*"]) == [
        f"xception_c{x}_d{d}_tiny" for x, d in ((35, 20), (35, 26), (35, 8), (58, 20),
                                                  (71, 20), (83, 20))]
    # with pretrained: the manifest's networks (read here as plain TOML), tags folded in
    released = sorted({key.split(".")[0] for key in _manifest()})
    assert "igcv2_c48_d11_fmnist" in released
    assert list_models(pretrained=True) == released
    assert list_models("*_fmnist", pretrained=True) == [n for n in released
                                                        if n.endswith("_fmnist")]
    assert list_models("mobilenet*", pretrained=True) == []


def _manifest() -> dict:
    """The released weights' manifest, read here as plain TOML."""
    path = Path(igc.__file__).parent / "weights" / "weights.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))["models"]


def test_temporary_model_registers_and_unregisters():
    with temporary_model("test_tmp_net", lambda num_classes, in_chans: nn.Linear(4, 2),
                         family="test", table="test", dataset="cifar10", input_size=4,
                         num_classes=2, aliases=("test_tmp.1",)) as entry:
        assert entry.name in list_models("test_*")
        assert isinstance(create_model("test_tmp.1"), nn.Linear)
    assert list_models("test_*") == []
    with pytest.raises(IGCError, match="unknown model"):
        model_entry("test_tmp.1")


@pytest.mark.parametrize("name", ["Bad-Name", "igcv2_1.0", "1net"])
def test_register_rejects_unsafe_or_taken_names(name):
    with pytest.raises(ValueError):
        register_model(name, nn.Identity, family="t", table="t", dataset="t", input_size=1,
                       num_classes=1)


@pytest.mark.parametrize("name", ["igcv2_fmnist", "igcv2_025", "igcv1_c48_d8_tiny",
                                  "xception_8l_c64"])
def test_models_have_their_metadata_in_pretrained_cfg(name):
    entry = model_entry(name)
    cfg = create_model(name).pretrained_cfg
    assert cfg["architecture"] == name and cfg["paper_table"] == entry.table
    assert cfg["input_size"] == (entry.in_chans, entry.input_size, entry.input_size)
    assert len(cfg["mean"]) == len(cfg["std"]) == entry.in_chans
    assert cfg["first_conv"] == "stem.0" and cfg["classifier"] == "classifier"
    assert 0 < cfg["crop_pct"] <= 1 and cfg["weights"] is None  # built, nothing loaded
    card = _manifest().get(name)  # the released card where there is one, else None
    assert cfg["released"] == card and (card is None or card["file"] == f"{name}.safetensors")


def test_metadata_follows_the_network_as_built():
    cfg = create_model("igcv2_c64_d8", num_classes=10, in_chans=1).pretrained_cfg
    assert cfg["num_classes"] == 10 and cfg["input_size"] == (1, 32, 32)
    assert cfg["mean"] is None  # CIFAR-100's three-channel statistics do not apply
    imagenet = create_model("igcv3_100").pretrained_cfg
    assert imagenet["crop_pct"] == 224 / 256 and imagenet["interpolation"] == "bilinear"


def test_cli_info_json_has_the_metadata(capsys):
    assert main(["info", "igcv3_0.7", "--json"]) == 0  # an alias
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "igcv3_070" and info["aliases"] == ["igcv3_0.7"]
    cfg = info["pretrained_cfg"]
    assert cfg["input_size"] == [3, 224, 224] and len(cfg["mean"]) == 3
    assert cfg["first_conv"] == "stem.0" and cfg["released"] is None


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function bodies too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_registry_imports_nothing_of_the_zoo_and_no_module_cycles_back():
    modules = {p.stem: _imports(p) for p in MODELS.glob("*.py") if p.stem != "__init__"}
    zoo = {"families", "small", "cifar", "imagenet"}
    assert not {f"igc.models.{m}" for m in zoo} & modules["registry"]
    graph = {m: {o for o in modules if f"igc.models.{o}" in deps}
             for m, deps in modules.items()}
    reach = {"registry"}
    frontier = ["registry"]
    while frontier:
        for nxt in graph[frontier.pop()] - reach:
            reach.add(nxt)
            frontier.append(nxt)
    assert not any("registry" in graph[m] for m in reach - {"registry"}), reach


def test_no_import_guards_around_first_party_modules():
    for path in [*MODELS.glob("*.py"), MODELS.parent / "analysis" / "count.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name)
                    and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                guarded = {m for stmt in node.body for m in _imports_of(stmt)}
                assert not any(m.startswith("igc") for m in guarded), (path, guarded)


def _imports_of(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.Import):
        return {a.name for a in stmt.names}
    if isinstance(stmt, ast.ImportFrom):
        return {stmt.module or ""}
    return set()
