"""Export (ONNX, torch.export), int8 quantisation, and the export/bench command lines."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import randomize_bn
from torch import nn

from igc.cli import main
from igc.deploy import export as ex
from igc.deploy import int8 as q8
from igc.deploy import optimize
from igc.errors import IGCError
from igc.layers import IGCV2Block, IGCV3Block
from igc.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

onnx_available = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="needs the export extra (onnx, onnxruntime)")


def tiny_net() -> nn.Module:
    """A small network with a strict IGCV2 block, a loose non-linear one and an IGCV3 block."""
    return randomize_bn(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        IGCV2Block(16, 16, branch_sizes=[4, 4]),
        IGCV2Block(16, 32, 2, groups=[4, 4], nonlinear=True),
        IGCV3Block(32, 32, expansion=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(32, 10)))


@onnx_available
@pytest.mark.parametrize("form", ["grouped", pytest.param("auto", marks=pytest.mark.slow),
                                  pytest.param("dense", marks=pytest.mark.slow)])
def test_onnx_round_trip_with_dynamic_batch(tmp_path, form):
    net = tiny_net()
    path = ex.export_onnx(optimize(net, form), tmp_path / "m.onnx", 3, 12, batch=2)
    assert ex.verify_onnx(path, net, 3, 12, batches=(1, 3)) < 1e-4
    session = ex.onnx_session(path)
    shape = session.get_inputs()[0].shape
    assert not isinstance(shape[0], int)  # the batch dimension is symbolic


@pytest.mark.slow
def test_pt2_round_trip_with_dynamic_batch(tmp_path):
    net = tiny_net()
    path = ex.export_pt2(optimize(net), tmp_path / "m.pt2", 3, 12)
    assert ex.verify_pt2(path, net, 3, 12, batches=(1, 3)) < 1e-4


@onnx_available
def test_int8_quantisation_runs(tmp_path):
    net = tiny_net()
    fp32 = ex.export_onnx(optimize(net), tmp_path / "m.onnx", 3, 12)
    int8 = q8.quantize_int8(fp32, tmp_path / "m.int8.onnx",
                            q8.random_images(16, 3, 12).images, batch=8)
    test = q8.random_images(20, 3, 12, seed=5)
    test.labels = torch.zeros(20, dtype=torch.long)
    report = q8.compare_int8(fp32, int8, test)
    assert report.images == 20 and 0 <= report.agreement <= 1
    assert report.change is not None and report.max_logit_diff < 10
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_unknown_format_and_bad_options(capsys):
    assert main(["export", "igcv2_fmnist", "--format", "tflite"]) == 2
    assert "unknown export format 'tflite'; choose from onnx, pt2" in _error_line(capsys)
    assert main(["export", "igcv2_fmnist", "--format", "pt2", "--int8"]) == 2
    assert "--int8 needs --format onnx" in _error_line(capsys)
    assert main(["export", "igcv2_fmnst", "--format", "pt2"]) == 2
    assert "did you mean igcv2_fmnist" in _error_line(capsys)


def test_cli_bad_input_size(capsys, tmp_path):
    out = str(tmp_path / "m.pt2")
    assert main(["export", "igcv2_fmnist", "--format", "pt2", "--input-size", "0",
                 "--out", out]) == 2
    assert "input size" in _error_line(capsys)
    assert main(["bench", "igcv2_fmnist", "--input-size", "-3", "--forms", "naive"]) == 2
    assert "input size" in _error_line(capsys)


def test_cli_missing_onnx_packages(capsys, monkeypatch, tmp_path):
    for name in ("onnx", "onnxruntime"):  # None in sys.modules: "import onnx" fails
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["export", "igcv2_fmnist", "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    line = _error_line(capsys)
    assert "pip install 'igc-torch[export]'" in line and "onnxruntime" in line
    with pytest.raises(IGCError, match="int8 quantisation needs"):
        q8.quantize_int8(tmp_path / "a.onnx", tmp_path / "b.onnx", torch.zeros(1, 1, 2, 2))


def _checkpoint(path, model_name: str, state_dict: dict) -> None:
    from igc.train.checkpoint import save_checkpoint

    save_checkpoint({"model": model_name, "model_args": {}, "num_classes": 10, "in_chans": 1,
                     "state_dict": state_dict, "recipe": {}, "epoch": 1,
                     "data": "fashion-mnist"}, path)


def test_cli_checkpoints(capsys, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["export", str(junk), "--format", "pt2"]) == 2
    assert "junk.pt" in _error_line(capsys)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert main(["export", str(foreign), "--format", "pt2"]) == 2
    assert "not an igc checkpoint" in _error_line(capsys)
    other = tmp_path / "other.pt"
    _checkpoint(other, "igcv2_fmnist",
                create_model("xception_c35_d8", num_classes=10, in_chans=1).state_dict())
    assert main(["export", str(other), "--format", "pt2"]) == 2
    assert "does not fit model 'igcv2_fmnist'" in _error_line(capsys)
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "pt2"]) == 2
    assert "does not exist" in _error_line(capsys)


@onnx_available
def test_cli_exports_a_checkpoint(capsys, tmp_path):
    model = randomize_bn(create_model("igcv2_fmnist"))
    ckpt = tmp_path / "run.pt"
    _checkpoint(ckpt, "igcv2_fmnist", model.state_dict())
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out), "--batch", "4",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "igcv2_fmnist" and result["weights"] == str(ckpt)
    assert result["max_abs_diff"] < 1e-4 and out.exists()
    assert result["checked_batches"] == [1, 3, 4]


def test_cli_bench_json(capsys):
    assert main(["bench", "igcv2_fmnist", "--forms", "naive,optimized", "--repeats", "2",
                 "--batch", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    forms = [r["form"] for r in report["results"]]
    assert forms == ["naive", "optimized"]
    assert report["matmul"]["macs_per_s"] > 0
    for r in report["results"]:
        assert r["macs"] > 0 and r["latency_ms"] > 0 and r["iqr_ms"] >= 0
    assert main(["bench", "igcv2_fmnist", "--forms", "naive,fastest"]) == 2
    assert "unknown form" in _error_line(capsys)
