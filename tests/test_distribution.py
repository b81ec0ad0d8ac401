"""What users of the published package meet: torch.hub entries, types for type checkers,
install hints naming the right distribution, true help, and messages through logging."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from igc.cli import main
from igc.errors import IGCError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hub_repo():
    """The repository as torch.hub sees a local checkout (hubconf.py at its root)."""
    assert (ROOT / "hubconf.py").is_file()
    return str(ROOT)


def test_torch_hub_loads_released_weights(hub_repo, monkeypatch):
    from igc.models.pretrained import WEIGHTS_ENV

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    torch.set_num_threads(1)
    model = torch.hub.load(hub_repo, "igcv2_c48_d11_fmnist", source="local", pretrained=True)
    assert model.pretrained_cfg["weights"]["source"] == "released"
    ours = __import__("igc").create_model("igcv2_c48_d11_fmnist", pretrained=True)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), ours.eval()(x))
    headless = torch.hub.load(hub_repo, "igcv2_fmnist", source="local", num_classes=0)
    assert headless.pretrained_cfg["num_classes"] == 0


def test_torch_hub_lists_every_network(hub_repo):
    from igc.models.registry import list_models

    sys.path.insert(0, hub_repo)
    try:
        import hubconf
    finally:
        sys.path.remove(hub_repo)
    entries = [n for n in dir(hubconf) if not n.startswith("_") and callable(getattr(hubconf, n))
               and n not in ("create_model", "list_models", "Callable")]
    assert set(list_models()) <= set(entries)
    assert "igcv2_fmnist" in (hubconf.igcv2_fmnist.__doc__ or "")


@pytest.mark.parametrize("kwargs, match", [
    ({"colour": 3}, "colour"),
    ({"num_classes": "ten"}, "num_classes"),
    ({"pretrained": 3}, "pretrained"),
])
def test_torch_hub_entry_with_unknown_arguments_is_one_line(hub_repo, kwargs, match):
    with pytest.raises(IGCError, match=match) as err:
        torch.hub.load(hub_repo, "igcv2_fmnist", source="local", **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_type_checkers_see_igcs_types(tmp_path):
    """mypy on a user's file: igc ships py.typed, so create_model has its signature (not
    Any) and a wrong call is an error. Third-party packages are skipped to keep it fast."""
    pytest.importorskip("mypy")
    assert (ROOT / "igc" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()
    user = tmp_path / "user.py"
    user.write_text("from igc import create_model\n\nreveal_type(create_model)\n"
                    "create_model(123)\n")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nfollow_imports = silent\n"
                      "[mypy-torch.*,numpy.*,PIL.*,tqdm.*,onnx.*,onnxruntime.*,matplotlib.*,"
                      "safetensors.*,huggingface_hub.*,tomli_w.*]\nfollow_imports = skip\n")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config),
                          "--cache-dir", str(tmp_path / "cache"), str(user)],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    out = run.stdout
    revealed = re.search(r'Revealed type is "(.*)"', out)
    assert revealed and revealed.group(1).startswith("def (name: str"), out
    assert 'Argument 1 to "create_model" has incompatible type "int"' in out, out
    assert "missing library stubs or py.typed" not in out, out


def test_install_hints_name_the_distribution():
    """The PyPI project ``igc`` is someone else's: every hint says ``igc-torch[...]``."""
    wrong = []
    for path in [*ROOT.glob("igc/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if re.search(r"(?<![\w-])igc\[", line):
                wrong.append(f"{path.relative_to(ROOT)}:{number}")
    assert not wrong, wrong
    from igc.deploy.export import EXPORT_HINT

    assert "igc-torch[export]" in EXPORT_HINT


def test_train_help_states_the_real_default_network(capsys):
    from igc.train.recipe import DEFAULT_DATA, DEFAULT_RECIPE, load_recipe

    default = load_recipe(DEFAULT_RECIPE[DEFAULT_DATA]).model
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"trains the IGCV2 network {default}" in text


def test_library_messages_go_through_logging(caplog, capsys):
    """An embedding application decides: the messages are records of the ``igc`` logger
    (nothing printed by the library itself); the command line shows them on stderr."""
    from igc.log import cli_handler, get_logger

    log = get_logger("igc.data.sources")
    with caplog.at_level(logging.INFO, logger="igc"):
        log.info("igc: downloading %s", "u")
    assert [r.getMessage() for r in caplog.records] == ["igc: downloading u"]
    assert capsys.readouterr().err == ""
    with cli_handler():
        log.info("shown")
        log.info("result", extra={"stdout": True})
    captured = capsys.readouterr()
    assert captured.err == "shown\n" and captured.out == "result\n"
    assert not logging.getLogger("igc").handlers


def test_no_print_in_library_modules():
    """Only the command line (igc/cli) prints; library modules log."""
    found = []
    for path in ROOT.glob("igc/**/*.py"):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if re.match(r"\s*print\(", line):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert not found, found
