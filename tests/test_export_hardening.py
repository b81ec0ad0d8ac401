"""Hostile input to ``igc export`` / ``igc bench`` and their library calls (issue 13): one
line and exit 2 (IGCError from the API), no traceback, no file left behind, global state
(thread count, root logger) restored."""

from __future__ import annotations

import json
import logging
import os
import tempfile

import pytest
import torch

from igc.cli import main
from igc.deploy import export as ex
from igc.deploy import int8 as q8
from igc.deploy import optimize
from igc.deploy.pipeline import export_model
from igc.deploy.source import calibrate_batchnorm
from igc.errors import IGCError
from igc.models.registry import create_model

onnx_available = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="needs the export extra (onnx, onnxruntime)")


def _fails(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, exactly one line on stderr, no traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@onnx_available
@pytest.mark.parametrize("opset, needle", [(99, "must be at most"), (0, "must be at least 7"),
                                           (-3, "must be at least 7"),
                                           (6, "must be at least 7")])
def test_opsets_onnx_does_not_have(capsys, tmp_path, opset, needle):
    _fails(capsys, ["export", "igcv2_fmnist", "--format", "onnx", "--opset", str(opset),
                    "--out", str(tmp_path / "m.onnx")], "ONNX opset", needle)
    assert _files(tmp_path) == []
    with pytest.raises(IGCError, match="ONNX opset"):
        ex.onnx_bytes(torch.nn.Identity(), 1, 4, opset=opset)


@onnx_available
@pytest.mark.parametrize("flag, value", [("--calibration", "0"), ("--calibration", "-5"),
                                         ("--eval-images", "0"), ("--eval-images", "-1"),
                                         ("--calibration", str(10**9))])
def test_zero_negative_or_absurd_image_counts(capsys, tmp_path, flag, value):
    _fails(capsys, ["export", "igcv2_fmnist", "--format", "onnx", "--int8", flag, value,
                    "--out", str(tmp_path / "m.onnx")], "images")
    assert _files(tmp_path) == []
    with pytest.raises(IGCError, match="images"):
        q8.int8_export(tmp_path / "m.onnx", 1, 28, calibration=int(value)
                       if flag == "--calibration" else 8,
                       eval_images=int(value) if flag == "--eval-images" else None)


@pytest.mark.parametrize("args, needle", [
    (["--batch", str(10**9)], "batch must be at most"),
    (["--batch", "0"], "batch must be at least 1"),
    (["--batch", "60000", "--input-size", "224"], "GiB"),
    (["--input-size", str(10**6)], "input size must be at most"),
    (["--input-size", "16000"], "GiB"),
    (["--input-size", "0"], "input size"),
])
def test_huge_or_zero_batches_and_input_sizes(capsys, tmp_path, args, needle):
    out = tmp_path / "m.pt2"
    _fails(capsys, ["export", "igcv2_fmnist", "--format", "pt2", "--out", str(out), *args],
           needle)
    assert _files(tmp_path) == []
    _fails(capsys, ["bench", "igcv2_fmnist", "--forms", "naive", "--repeats", "1", *args],
           needle)


def test_bench_input_size_zero_is_not_replaced(capsys):
    line = _fails(capsys, ["bench", "igcv2_fmnist", "--input-size", "0", "--forms", "naive"])
    assert "got 0" in line  # refused, not silently replaced by the model's 28


def test_bench_other_numbers(capsys):
    _fails(capsys, ["bench", "igcv2_fmnist", "--repeats", "0"], "--repeats")
    _fails(capsys, ["bench", "igcv2_fmnist", "--threads", "0"], "--threads")
    _fails(capsys, ["bench", "igcv2_fmnist", "--threads", str(10**6)], "--threads")
    _fails(capsys, ["bench", "nonexistent_model", "--forms", "naive"], "unknown model")


def test_unwritable_missing_and_over_long_output_paths(capsys, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder")
    base = ["export", "igcv2_fmnist", "--format", "pt2"]
    _fails(capsys, [*base, "--out", str(blocker / "m.pt2")], "not a folder")
    _fails(capsys, [*base, "--out", str(tmp_path)], "is a folder")
    _fails(capsys, [*base, "--out", ""], "empty")
    _fails(capsys, [*base, "--out", str(tmp_path / ("x" * 300 + ".pt2"))], "at most 255")
    deep = tmp_path / "/".join(["d" * 200] * 25) / "m.pt2"
    _fails(capsys, [*base, "--out", str(deep)], "shorter than")
    assert _files(tmp_path) == ["plain-file"]
    # a folder no one can write in (the kernel's /proc refuses even root)
    _fails(capsys, [*base, "--out", "/proc/igc-test/m.pt2"], "/proc")
    # a missing folder is created (as before), and only on success
    nested = tmp_path / "new" / "folder" / "m.pt2"
    assert main([*base, "--out", str(nested), "--json"]) == 0
    assert nested.exists() and json.loads(capsys.readouterr().out)["file"] == str(nested)


@onnx_available
def test_failed_export_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous good file")

    def broken(*_args, **_kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    _fails(capsys, ["export", "igcv2_fmnist", "--format", "onnx", "--out", str(out)],
           "exporter exploded")
    assert _files(tmp_path) == ["m.onnx"] and out.read_bytes() == b"previous good file"
    monkeypatch.undo()

    import onnx

    def reject(*_args, **_kwargs):
        raise onnx.checker.ValidationError("bad graph")

    monkeypatch.setattr(onnx.checker, "check_model", reject)
    _fails(capsys, ["export", "igcv2_fmnist", "--format", "onnx", "--out", str(out)],
           "onnx.checker")
    assert _files(tmp_path) == ["m.onnx"] and out.read_bytes() == b"previous good file"


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from igc.files import atomic

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(tmp_path / "m.bin", b"data")
    assert _files(tmp_path) == []


@onnx_available
def test_int8_restores_the_root_logger(tmp_path):
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        net = optimize(create_model("igcv2_fmnist"), "grouped")
        fp32 = ex.export_onnx(net, tmp_path / "m.onnx", 1, 28)
        q8.quantize_int8(fp32, tmp_path / "m.int8.onnx", q8.random_images(8, 1, 28).images)
        assert root.level == logging.INFO
    finally:
        root.setLevel(before)
    assert sorted(_files(tmp_path)) == ["m.int8.onnx", "m.onnx"]


def test_bench_restores_the_thread_count(capsys):
    outer = torch.get_num_threads()
    torch.set_num_threads(2)
    before, other = 2, 1
    assert main(["bench", "igcv2_fmnist", "--forms", "naive", "--repeats", "1",
                 "--threads", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == other
    assert torch.get_num_threads() == before
    _fails(capsys, ["bench", "igcv2_fmnist", "--forms", "naive", "--threads", str(other),
                    "--batch", "0"])
    assert torch.get_num_threads() == before
    torch.set_num_threads(outer)


@onnx_available
def test_bench_onnxruntime_leaves_no_temporary_folders(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert main(["bench", "igcv2_fmnist", "--forms", "onnxruntime", "--repeats", "1",
                 "--json"]) == 0
    assert _files(tmp_path) == []
    assert not any(name.startswith("igc-bench-") for name in os.listdir(tempfile.gettempdir()))


@onnx_available
def test_export_of_fresh_weights_reports_a_meaningful_difference(capsys, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", "igcv2_fmnist", "--format", "onnx", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bn_statistics"] == "random images"
    assert 0 <= result["max_rel_diff"] < 1e-4 and result["max_abs_diff"] < 1e-3
    assert main(["export", "igcv2_fmnist", "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "of the largest output" in text and "BatchNorm statistics of random images" in text


def test_bn_calibration_gives_normal_sized_outputs():
    torch.manual_seed(0)
    fresh = create_model("igcv2_fmnist").eval()
    calibrated = calibrate_batchnorm(create_model("igcv2_fmnist"), 1, 28)
    calibrated.load_state_dict({k: v for k, v in fresh.state_dict().items()
                                if "running" not in k and "num_batches" not in k},
                               strict=False)
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        small, normal = fresh(x), calibrated(x)
    # the first BN now normalises its input: mean about 0 and variance about 1
    first = next(m for m in calibrated.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert float(first.running_var.mean()) != pytest.approx(1.0, abs=1e-3)
    assert not calibrated.training
    assert float(normal.std()) > float(small.std())
    with pytest.raises(IGCError, match="must be at least 2"):
        calibrate_batchnorm(create_model("igcv2_fmnist"), 1, 28, images=1)


def test_api_gives_the_cli_result(tmp_path, capsys):
    result = export_model("igcv2_fmnist", "pt2", tmp_path / "a.pt2")
    assert main(["export", "igcv2_fmnist", "--format", "pt2", "--out",
                 str(tmp_path / "b.pt2"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = result.to_dict()
    for key in ("model", "form", "input", "weights", "checked_batches", "bn_statistics"):
        assert api[key] == cli[key]
    with pytest.raises(IGCError, match="unknown export format"):
        export_model("igcv2_fmnist", "tflite")
