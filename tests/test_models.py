"""The model zoo: every network of the paper exists by name, builds, trains a step and
exports; the CIFAR builder reads like Table 1; the CLI lists and describes the zoo."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest
import torch
from torch import nn

from igc.cli import main
from igc.errors import IGCError
from igc.layers import IGCBlock, IGCV1Block, IGCV2Block, IGCV3Block, XceptionBlock
from igc.models.cifar import CifarConfig, IGCNet, ResidualUnit, cifar_net, eight_layer_net
from igc.models.imagenet import scale_width
from igc.models.paper import paper_rows
from igc.models.registry import create_model, list_models, model_entry
from igc.models.residual import ZeroPadShortcut

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGENET = [n for n in list_models() if model_entry(n).dataset == "imagenet"]
#: One network per family and head kind runs in the fast lane; the rest is marked slow.
FAST = {"igcv2_fmnist", "igcv2_c64_d8", "igcv1_c48_d8_tiny", "xception_c58_d20",
        "igcv2star_c216_d20", "igcv2ii_8l_c100", "mobilenetv1_025", "igcv2_025", "igcv3_070",
        "mobilenetv2_070"}


def lanes(names: list[str], fast: set[str]) -> list:
    """``names`` as parameters, those outside ``fast`` marked slow."""
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in names]


def blocks(model: nn.Module) -> list[IGCBlock]:
    """The blocks of the stages (not the IGCV2* classifier of the ImageNet IGCV2)."""
    return [m for m in model.stages.modules() if isinstance(m, IGCBlock)]


# --- every network, by name ---------------------------------------------------------------


@pytest.mark.parametrize("name", lanes(list_models(), FAST))
def test_every_model_trains_one_step(name):
    entry = model_entry(name)
    size = min(entry.input_size, 64)  # ImageNet networks at 64x64 to stay fast
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(2, entry.in_chans, size, size)
    y = model(x)
    assert y.shape == (2, entry.num_classes)
    nn.functional.cross_entropy(y, torch.tensor([0, 1])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", lanes(IMAGENET, {"mobilenetv1_025"}))
def test_imagenet_models_export(name):
    model = create_model(name).eval()
    x = torch.randn(1, 3, 32, 32)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_every_model_has_its_metadata():
    for name in list_models():
        entry = model_entry(name)
        assert entry.family and entry.table and entry.dataset
        assert entry.input_size in (28, 32, 64, 224)
        if name.endswith("_tiny"):
            assert (entry.input_size, entry.num_classes, entry.dataset) == (
                64, 200, "tiny-imagenet")
            assert entry.kwargs["stem_stride"] == 2
        elif entry.dataset.startswith("cifar"):
            assert entry.num_classes == 100 and entry.input_size == 32


def test_every_network_the_paper_reports_is_registered():
    named = {row["model"] for row in paper_rows() if "model" in row}
    assert named <= set(list_models())
    sweeps = {f"igcv2star_c{x}_d20" for x in (112, 136, 160, 192, 256)}
    sweeps |= {f"igcv2star_c64_d{d}" for d in (38, 50, 62, 74, 98)}
    assert sweeps | {f"{n}_tiny" for n in sweeps} <= set(list_models())


def test_unknown_model_suggests_close_names():
    with pytest.raises(IGCError, match=r"igcv2_1\.0"):
        create_model("igcv2_1.O")


def test_create_model_overrides_and_records_its_metadata():
    model = create_model("xception_c35_d8", num_classes=10, in_chans=1, width=16)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == "xception_c35_d8" and cfg["input_size"] == (1, 32, 32)
    assert cfg["num_classes"] == 10 and model.default_cfg is cfg
    assert blocks(model)[0].out_channels == 16
    with pytest.raises(IGCError, match="bad option"):
        create_model("xception_c35_d8", no_such_option=3)


def test_lazy_package_exports():
    import igc

    assert igc.list_models("igcv3*") == ["igcv3_070", "igcv3_100"]
    assert isinstance(igc.create_model("igcv2_c64_d8"), IGCNet)


# --- the CIFAR family of Table 1 --------------------------------------------------------------


@pytest.mark.parametrize("block", ["xception", "igcv1", "igcv2", "igcv2star"])
def test_cifar_net_layout_follows_table_1(block):
    sizes = (4, 4) if block == "igcv2" else None
    model = cifar_net(block, 16, 14, branch_sizes=sizes, num_classes=10, in_chans=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)  # any input size
    found = blocks(model)
    assert len(found) == 3 * 4  # D = 3B + 2
    assert [b.stride for b in found] == [1] * 4 + [2, 1, 1, 1] * 2
    assert [b.out_channels for b in found] == [16] * 4 + [32] * 4 + [64] * 4
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    assert len(units) == 6  # a skip connection every two blocks
    stem = model.stem[0]
    assert stem.out_channels == (64 if block == "igcv2star" else 16)


def test_cifar_net_options():
    plain = cifar_net("igcv2star", 32, 8, skip="none", stem_stride=2, in_chans=1)
    assert not any(isinstance(m, ResidualUnit) for m in plain.modules())
    assert plain.stem[0].stride == (2, 2)
    flat = cifar_net("xception", 16, 8, down_sampling=False)
    assert {b.out_channels for b in blocks(flat)} == {16}
    assert {b.stride for b in blocks(flat)} == {1}
    odd = cifar_net("xception", 8, 11)  # B = 3: the third block has no partner
    assert len(blocks(odd)) == 9
    assert odd(torch.randn(1, 3, 16, 16)).shape == (1, 10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(block="resnet", width=16, depth=8), "unknown block"),
    (dict(block="xception", width=16, depth=9), "3B \\+ 2"),
    (dict(block="igcv2", width=16, depth=8), "branch_sizes"),
    (dict(block="igcv2", width=16, depth=8, branch_sizes=(3, 3)), "divide"),
    (dict(block="xception", width=16, depth=8, skip="sometimes"), "skip"),
    (dict(block="igcv2", width=16, depth=8, branch_sizes=((4, 4), (4, 4))), "per stage"),
])
def test_cifar_net_rejects_bad_configurations(kwargs, match):
    with pytest.raises(IGCError, match=match):
        cifar_net(**kwargs)


def test_config_is_declarative():
    config = CifarConfig("igcv2", 64, 20, branch_sizes=((8, 8), (16, 16), (32, 32)))
    rows = config.stages()
    assert [(s.width, s.blocks, s.stride, s.branch_sizes) for s in rows] == [
        (64, 6, 1, (8, 8)), (128, 6, 2, (16, 16)), (256, 6, 2, (32, 32))]


def test_igcv1_keeps_the_official_primary_partitions():
    # IGC-L24M2 (C48): 24 primary partitions in every stage, of 2, 4, 8 channels
    model = create_model("igcv1_c48_d8")
    found = blocks(model)
    assert all(isinstance(b, IGCV1Block) for b in found)
    assert {b.product.factors[0].groups for b in found} == {24}
    assert [b.product.factors[1].groups for b in found] == [2, 2, 4, 4, 8, 8]


def test_igcv2star_uses_k_8_and_l_star_per_stage():
    model = create_model("igcv2star_c216_d20")
    found = blocks(model)
    assert model.stem[0].out_channels == 64
    assert found[0].in_channels == 64 and found[0].out_channels == 216
    regular = [b for b in found if b.in_channels == b.out_channels]
    for b in regular:
        sizes = b.product.branch_sizes
        assert sizes[0] == 1 and set(sizes[1:]) == {8}
        assert len(sizes) - 1 == math.ceil(math.log(b.out_channels, 8))


@pytest.mark.parametrize("name, stem", [("xception_c58_d20", 35), ("xception_c83_d20", 35),
                                        ("xception_c35_d8", 35), ("igcv2star_c216_d20", 64)])
def test_stem_to_first_stage_shortcut_has_no_weights(name, stem):
    """Section 4.3 fixes Xception's first convolution at 35 channels (IGCV2*: 64, Table 1);
    the first unit pads its input with zeros up to x channels, transitions project."""
    model = create_model(name)
    assert model.stem[0].out_channels == stem
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    x = model.config.width
    first = units[0].shortcut
    if stem == x:
        assert isinstance(first, nn.Identity)
    else:
        assert isinstance(first, ZeroPadShortcut)
        y = first(torch.randn(2, stem, 4, 4))
        assert y.shape == (2, x, 4, 4) and not y[:, stem:].any()
    projections = [u.shortcut for u in units if isinstance(u.shortcut, nn.Sequential)]
    assert [p[0].stride for p in projections] == [(2, 2)] * 2  # the two stage transitions


def test_final_permutation_follows_eqs_2_and_4():
    """IGCV1 and linear IGCV2 blocks end with P_L; shuffle_last=False is the old network."""
    for name in ("igcv1_c48_d8", "igcv2_c64_d8", "igcv2star_c216_d20", "igcv2_fmnist"):
        found = [b for b in blocks(create_model(name)) if not isinstance(b, XceptionBlock)]
        assert all(b.product.shuffle_last for b in found)
        assert not any(b.product.shuffle_last
                       for b in blocks(create_model(name, shuffle_last=False)))


def test_igcv2_branch_sizes_per_stage():
    model = create_model("igcv2_c64_d8")
    widths = {b.out_channels: b.product.branch_sizes for b in blocks(model)
              if b.in_channels == b.out_channels}
    assert widths == {64: (1, 8, 8), 128: (1, 16, 16), 256: (1, 32, 32)}


def test_eight_layer_nets():
    for name, sizes in [("igcv2_8l_c144", (1, 12, 12)), ("igcv2i_8l_c98", (2, 7, 7)),
                        ("igcv2ii_8l_c100", (1, 10, 10)), ("xception_8l_c64", (1, 64))]:
        found = blocks(create_model(name))
        assert len(found) == 6 and {b.stride for b in found} == {1}
        assert {b.product.branch_sizes for b in found} == {sizes}
    # Figure 3: L factors at the balance condition, Figure 2: L and K given
    assert blocks(eight_layer_net("igcv2", 64, layers=4))[0].product.branch_sizes == (1, 4, 4, 4)
    assert blocks(eight_layer_net("igcv2", 64, layers=3, k=4))[0].product.branch_sizes == (
        1, 4, 4)


# --- ImageNet networks ----------------------------------------------------------------------


def test_imagenet_layouts():
    igcv2 = blocks(create_model("igcv2_1.0"))
    assert all(isinstance(b, IGCV2Block) for b in igcv2)
    assert sum(b.in_channels == b.out_channels == 1024 for b in igcv2) == 5
    assert {tuple(f.groups for f in b.product.factors[1:]) for b in igcv2} == {(8, 8)}
    mnv1 = blocks(create_model("mobilenetv1_1.0"))
    assert all(isinstance(b, XceptionBlock) for b in mnv1) and len(mnv1) == 13
    igcv3 = blocks(create_model("igcv3_1.0"))
    assert all(isinstance(b, IGCV3Block) for b in igcv3)
    assert len(igcv3) == 1 + 4 + 6 + 8 + 6 + 6 + 1  # twice MobileNetV2's repeats
    assert len(blocks(create_model("mobilenetv2_1.0"))) == 17
    assert [b.skip for b in igcv3[:3]] == [False, False, True]


def test_width_rules():
    assert [scale_width(c, 0.7, "paper") for c in (32, 16, 24, 64, 1280)] == [
        22, 12, 18, 46, 896]
    assert [scale_width(c, 0.5, "torchvision") for c in (32, 16, 24)] == [16, 8, 16]
    assert scale_width(32, 0.25, "int") == 8
    with pytest.raises(IGCError, match="width rule"):
        scale_width(32, 0.5, "nearest")


def test_torch_compile_one_small_model():
    """torch.compile on the smallest network (the rest is covered by torch.export)."""
    model = cifar_net("igcv2", 8, 5, branch_sizes=(2, 4)).eval()
    compiled = torch.compile(model, backend="eager")  # graph capture without codegen
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


# --- CLI ------------------------------------------------------------------------------------


def test_cli_models_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["models", "xception_c35_d*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"xception_c35_d8", "xception_c35_d20"}
    for r in rows:
        assert {"name", "params", "macs", "paper_params", "paper_macs"} <= set(r)
        assert r["params"] > 0 and r["macs"] > 0
    assert not list(tmp_path.glob("igc/models-*.json"))  # the shipped table: nothing counted
    assert main(["models", "xception_c35_d*", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == rows


def test_cli_models_table(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["models", "mobilenetv1_1.0", "--no-cache"]) == 0  # an alias
    out = capsys.readouterr().out
    assert "mobilenetv1_100" in out and "4.2M" in out and "569M" in out


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal, quiet", [(True, False), (False, False), (True, True)])
def test_cli_models_no_cache_shows_its_progress_on_a_terminal(terminal, quiet, tiny_models,
                                                              tmp_path, monkeypatch, capsys):
    """Counting the zoo takes tens of seconds: a bar on stderr counts the networks, only on
    a terminal (as the download messages) and never with --quiet; stdout is the same."""
    from igc.analysis import zoo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(zoo, "PROGRESS_DELAY_S", 0)  # the tiny networks count in ms
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    argv = ["models", "test_tiny*", "--no-cache", "--json"] + (["--quiet"] if quiet else [])
    assert main(argv) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert names == sorted(tiny_models[:2])
    if terminal and not quiet:
        drawn = err.getvalue()
        # (tqdm redraws at most every 0.1 s: which later steps show depends on the clock)
        assert "counting networks:   0%" in drawn and "0/2 [" in drawn, drawn
        assert drawn.endswith("\r"), drawn  # cleared when done (leave=False)
    else:
        assert err.getvalue() == ""


def test_cli_info(capsys):
    assert main(["info", "igcv2_1.0"]) == 0
    out = capsys.readouterr().out
    assert "IGCV2Block" in out and "1024" in out and "2048" in out and "dense" in out
    assert main(["info", "igcv2_c64_d8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sum(r["params"] for r in info["blocks"]) == info["params"]
    assert sum(r["macs"] for r in info["blocks"]) == info["macs"]


@pytest.mark.parametrize("argv", [["info", "igcv2_1.O"], ["models", "no_such_net*"]])
def test_cli_unknown_names_fail_in_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("igc: error: unknown model") and err.count("\n") == 1
