"""Hostile input of issue 20 (and what its fuzzer found), as a table: every row runs in a
sandbox under a time limit and asserts what the other hostile tables assert (exit 2, one
stderr line holding the expected words, no traceback, no file in the sandbox created,
changed or removed). Then the cases that must succeed cleanly: a plot of metrics holding
1e308, ``igc info`` at a 4096 side, a relative ``--data-dir`` stored absolute, a failed
``igc reproduce`` that leaves nothing blocking its corrected command."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import R, Row

from igc.cli import main

LIMIT_S = 120
FASHION = Path("/usr/share/datasets/fashion-mnist")
NOT_OURS = "cache/Microsoft"  # onnxruntime's device id in the user cache
pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Sandbox:
    root: Path
    work: Path
    crafted: Path
    cache: Path


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    sb = Sandbox(tmp_path, tmp_path / "work", tmp_path / "crafted", tmp_path / "cache")
    for folder in (sb.work, sb.crafted, sb.cache):
        folder.mkdir()
    (sb.work / "notes.txt").write_text("a user's notes\n")
    os.mkfifo(sb.work / "fifo.onnx")
    os.mkfifo(sb.work / "fifo.png")
    os.mkfifo(sb.work / "fifo.md")
    if os.geteuid() == 0:  # our own null device: a device node that is not /dev's
        os.mknod(sb.work / "device.onnx", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    monkeypatch.setenv("XDG_CACHE_HOME", str(sb.cache))
    monkeypatch.setenv("IGC_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(sb.work)
    return sb


def _image_folder_with_fifo(sb: Sandbox) -> str:
    from PIL import Image

    root = sb.crafted / "images"
    for split in ("train", "val"):
        folder = root / split / "c0"
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / "0.png")
    os.mkfifo(root / "train" / "c0" / "f.png")
    return str(root)


def _metrics(sb: Sandbox, line: str) -> str:
    run = sb.crafted / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(line)
    return str(run)


EXPORT = ("export", "igcv2_fmnist", "--format", "onnx", "--out")
TRAIN = ("train", "--quiet", "--epochs", "1", "--out", "{crafted}/r")
ROWS = [
    # ------------------------------------------------ 1. writes own their target
    R("export-out-fifo", *EXPORT, "{work}/fifo.onnx", expect="a FIFO (named pipe), not a"),
    R("export-out-device", *EXPORT, "{work}/device.onnx", expect="a character device"),
    R("export-out-folder", *EXPORT, "{crafted}", expect="is a folder"),
    R("export-out-wrong-suffix", *EXPORT, "{work}/notes.txt", expect="must end in .onnx"),
    R("export-pt2-wrong-suffix", "export", "igcv2_fmnist", "--format", "pt2", "--out",
      "{work}/m.onnx", expect="must end in .pt2"),
    R("plot-out-fifo", "plot", "{crafted}", "--out", "{work}/fifo.png", expect="a FIFO"),
    R("design-draw-fifo", "design", "-C", "24", "--draw", "{work}/fifo.png", expect="a FIFO"),
    R("reproduce-docs-fifo", "reproduce", "table2-counts", "--docs", "{work}/fifo.md",
      "--out", "{crafted}/r", expect="a FIFO"),
    # ------------------------------------------------ 3. resources
    R("train-augment-scale-crop-huge", *TRAIN, "--set",
      'train_augment=["scale_crop:3000,4000,3000"]', expect="GiB"),
    R("train-augment-pad-99999", *TRAIN, "--set", 'train_augment=["pad_crop:99999"]',
      expect="IGC_MEMORY_LIMIT_GB"),
    R("train-eval-augment-huge", *TRAIN, "--set", 'eval_augment=["scale_crop:5000,5000,5000"]',
      expect="eval_augment"),
    Row("train-imagefolder-fifo", lambda sb: [
        "train", "--quiet", "--data", "imagefolder", "--data-dir", _image_folder_with_fifo(sb),
        "--model", "igcv2_fmnist",
        "--set", "image_size=8", "--set", "resize_size=8", "--out", str(sb.crafted / "r")],
        "is not a regular file"),
    R("eval-pretrained-dev-zero", "eval", "igcv2_fmnist", "--pretrained", "file:///dev/zero",
      expect="not a regular file"),
    # ------------------------------------------------ 4. model arguments
    R("train-model-args-width-float", *TRAIN, "--set", "model_args.width=64.5",
      expect="width must be an integer, got 64.5"),
    R("train-model-args-branch-text", *TRAIN, "--model", "igcv2_c64_d8", "--set",
      'model_args.branch_sizes="abc"', expect="branch_sizes must be"),
    R("train-model-args-num-classes", *TRAIN, "--set", "model_args.num_classes=5",
      expect="cannot set num_classes"),
    R("train-model-args-in-chans", *TRAIN, "--set", "model_args.in_chans=3",
      expect="cannot set in_chans"),
    R("train-model-args-unknown", *TRAIN, "--model", "igcv2_100", "--set",
      "model_args.bogus=1", expect="unknown option 'bogus'"),
    # ------------------------------------------------ 6. URLs, nesting, limits, state
    R("eval-url-port", "eval", "igcv2_fmnist", "--pretrained", "http://example.com:abc/w.pt",
      expect="not a valid address"),
    R("eval-url-space", "eval", "igcv2_fmnist", "--pretrained", "http://exa mple.com/w.pt",
      expect="spaces or control characters"),
    R("eval-url-ipv6", "eval", "igcv2_fmnist", "--pretrained", "http://[::1/w.pt",
      expect="not a valid address"),
    R("eval-url-scheme", "eval", "igcv2_fmnist", "--pretrained", "gopher://x/w.pt",
      expect="http(s):// or file:// URL"),
    R("train-set-nested-330", *TRAIN, "--set",
      "model_args.width=" + "[" * 330 + "]" * 330, expect="plain value"),
    Row("train-recipe-nested-330", lambda sb: (sb.crafted / "deep.toml").write_text(
        "model_args = " + "[" * 330 + "]" * 330 + "\n") and [
        "train", "--quiet", "--recipe", str(sb.crafted / "deep.toml")], "recipe"),
    R("design-64-layers", "design", "-C", "64", "-L", "64", expect="no dense design of 64"),
    R("design-check-paths-overflow", "design", "-C", "64", "--check", "--branch-sizes",
      ",".join(["2"] * 64), expect="cannot be counted"),
    R("train-newline-in-path", "train", "--quiet", "--data-dir", "{crafted}/no\nsuch",
      expect="no\\nsuch does not exist"),
    R("train-mnist-from-fashion", *TRAIN, "--data", "mnist", "--data-dir", str(FASHION),
      expect="is Fashion-MNIST's"),
    # ------------------------------------------------ FIFOs read: named, not "missing"
    Row("train-recipe-fifo", lambda sb: os.mkfifo(sb.crafted / "r.toml") or [
        "train", "--quiet", "--recipe", str(sb.crafted / "r.toml")],
        "r.toml is a FIFO (named pipe), not a regular file"),
    Row("eval-pretrained-fifo", lambda sb: os.mkfifo(sb.crafted / "w.pt") or [
        "eval", "igcv2_fmnist", "--pretrained", str(sb.crafted / "w.pt")],
        "w.pt is a FIFO (named pipe), not a regular file"),
    Row("eval-checkpoint-fifo", lambda sb: os.mkfifo(sb.crafted / "c.pt") or [
        "eval", str(sb.crafted / "c.pt")], "c.pt is a FIFO (named pipe), not a regular file"),
    # ------------------------------------------------ found by the fuzzer
    Row("plot-damaged-run-json", lambda sb: (
        Path(_metrics(sb, '{"epoch": 1, "train_loss": 1, "train_acc": 5, "lr": 0.1}\n'))
        / "run.json").write_text("") or
        ["plot", str(sb.crafted / "run"), "--out", str(sb.crafted / "p.png")], "run.json"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_cli_hostile_input(row, sandbox, refused, monkeypatch):
    if row.id == "export-out-device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    if row.id == "train-mnist-from-fashion" and not FASHION.is_dir():
        pytest.skip("the Debian Fashion-MNIST package is not installed")
    row.check(sandbox, refused, LIMIT_S, skip=NOT_OURS)


def test_bench_calibrate_names_a_cache_folder_that_cannot_be_made(sandbox, refused,
                                                                  monkeypatch):
    blocker = sandbox.crafted / "cachefile"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    err = refused(["bench", "--calibrate"], sandbox.root, LIMIT_S)  # at once, not after
    assert f"cannot make the cache folder {blocker}/igc" in err, err  # minutes of timing


def test_a_plot_of_metrics_holding_1e308_is_drawn(sandbox, capfd):
    run = _metrics(sandbox, "".join(json.dumps(r) + "\n" for r in [
        {"epoch": 1, "train_loss": 1e308, "train_acc": 5, "lr": 1e308, "top1": 5,
         "test_loss": -1e308},
        {"epoch": 2, "train_loss": 2.0, "train_acc": 50, "lr": 0.1, "top1": 50,
         "test_loss": 1e-308}]))
    assert main(["plot", run, "--out", str(sandbox.crafted / "p.png")]) == 0
    captured = capfd.readouterr()
    assert (sandbox.crafted / "p.png").stat().st_size > 1000
    assert "Traceback" not in captured.err and "Warning" not in captured.err, captured.err


def test_info_at_a_4096_side_counts_on_the_meta_device(sandbox, capsys, time_limit):
    time_limit(LIMIT_S)  # a hang guard: it took 110 s when it ran the network for real
    assert main(["info", "igcv3_100", "--input-size", "4096", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    small = main(["info", "igcv3_100", "--json"]) == 0 and json.loads(capsys.readouterr().out)
    assert info["params"] == small["params"]
    # multiply-adds grow with the area, the classifier's excepted
    assert 300 < info["macs"] / small["macs"] < (4096 / 224) ** 2 + 1


def test_a_relative_data_dir_is_stored_absolute(sandbox, tiny_models, tiny_splits,
                                                monkeypatch):
    from igc.train.config import RunConfig
    from igc.train.recipe import load_recipe

    (sandbox.work / "data").mkdir()
    config = RunConfig(model="test_tiny_igcv2", data="fashion-mnist",
                       recipe=load_recipe("fashion-mnist-cpu"), out=sandbox.crafted / "r",
                       data_dir="data").check()
    assert config.data_dir == str(sandbox.work / "data")
    assert "--data-dir " + str(sandbox.work / "data") in config.resume_command()


def test_a_failed_reproduce_leaves_nothing_that_blocks_the_corrected_command(sandbox, capsys):
    out = sandbox.crafted / "r"
    empty = sandbox.crafted / "no-data"
    empty.mkdir()
    argv = ["reproduce", "table2", "--budget", "smoke", "--quiet", "--threads", "1",
            "--out", str(out)]
    assert main([*argv, "--data", "mnist", "--data-dir", str(empty)]) == 2
    assert "is not in --data-dir" in capsys.readouterr().err
    assert not out.exists()  # no reproduce.json to refuse the corrected command


def test_an_offline_download_names_the_network_and_leaves_no_folder(sandbox, capfd,
                                                                    monkeypatch):
    """It blamed the disk and left an empty folder. (The download's progress line comes
    first: the error is the last line.)"""
    import urllib.error
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution")))
    assert main(["train", "--quiet", "--epochs", "1", "--out", str(sandbox.crafted / "r"),
                 "--data", "cifar10", "--model", "xception_c35_d8"]) == 2
    err = capfd.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("igc: error: could not download CIFAR-10") and "Traceback" not in err
    assert "Temporary failure in name resolution); check the address and the network" in last
    assert "disk space" not in err
    assert not (sandbox.root / "data").exists() and not (sandbox.crafted / "r").exists()


def test_a_resume_with_changes_and_damaged_metrics_is_one_line(sandbox, tiny_models,
                                                                tiny_data, refused):
    """Found by the fuzzer: ``--resume --epochs 3`` announced its changes, then refused the
    damaged metrics.jsonl: two lines. The file is now checked before anything is said."""
    from igc.train.recipe import load_recipe, override
    from igc.train.trainer import RunConfig, train

    run = sandbox.crafted / "run"
    recipe = override(load_recipe("fashion-mnist-cpu"), [
        ("epochs", 1), ("batch_size", 16), ("threads", 1), ("channels_last", False)])
    train(RunConfig(model=tiny_models[0], data="fashion-mnist", recipe=recipe, out=run,
                    quiet=True, device="cpu"))
    (run / "metrics.jsonl").write_bytes(b"nope\n{}\n")
    err = refused(["train", "--quiet", "--out", str(run), "--resume", "--epochs", "3"],
                  sandbox.root, LIMIT_S, skip=NOT_OURS)
    assert "line 1 is not JSON" in err, err
