"""Hostile input for ``igc design / models / info / export / bench / reproduce``, as a table
(the rows of ``train / eval / plot / summarize`` are in ``tests/test_hostile.py``).

Every row runs in a sandbox (a working folder holding a user's own files, crafted files,
an empty folder, the user cache) under a time limit, and asserts what that table asserts:
exit status 2, exactly one line on stderr, no traceback, the expected words in it, and no
file in the sandbox created, changed or removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hostile import R, Row

from igc.cli import main

LIMIT_S = 120  # per row: a hang fails instead of blocking the suite (generous: shared CPUs)
pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Sandbox:
    """``work`` (the current folder: a user's ``notes.txt`` and ``model.onnx``),
    ``crafted`` (files a row makes before the snapshot), ``empty``, ``cache`` (the user
    cache, ``$XDG_CACHE_HOME``) and ``data`` (an empty data folder)."""

    root: Path
    work: Path
    crafted: Path
    empty: Path
    cache: Path
    data: Path


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    sb = Sandbox(tmp_path, *(tmp_path / n for n in ("work", "crafted", "empty", "cache",
                                                     "data")))
    for folder in (sb.work, sb.crafted, sb.empty, sb.cache, sb.data):
        folder.mkdir()
    (sb.work / "notes.txt").write_text("a user's notes\n")
    (sb.work / "model.onnx").write_bytes(b"a user's own file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(sb.cache))
    monkeypatch.setenv("IGC_DATA", str(sb.data))
    monkeypatch.chdir(sb.work)
    return sb


#: What others write into the user cache: onnxruntime records a device id there when it
#: is imported (``$XDG_CACHE_HOME/Microsoft/DeveloperTools``).
NOT_OURS = "cache/Microsoft"


C = Row  # a row whose command line a function of the sandbox makes (crafting files first)


def _file(sb: Sandbox, name: str, data: bytes) -> str:
    path = sb.crafted / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


class _Payload:
    """Pickled by torch.save; unpickling it would run code (weights_only refuses)."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/igc-hostile-tools-pwned",))


def _pickle(sb: Sandbox) -> str:
    path = sb.crafted / "evil" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save({"format": "igc-checkpoint", "x": _Payload()}, path)
    return str(path.parent)


def _foreign_checkpoint(sb: Sandbox) -> str:
    path = sb.crafted / "foreign.pt"
    torch.save({"format": "someone-else", "weights": torch.zeros(3)}, path)
    return str(path)


LONG = "x" * 5000
EXPORT = ("export", "igcv2_fmnist")
BENCH = ("bench", "igcv2_fmnist", "--forms", "naive", "--repeats", "1")
ROWS = [
    # ---------------------------------------------------------------- design
    R("design-no-width", "design", expect="the following arguments are required: --channels"),
    R("design-width-0", "design", "-C", "0", expect="--channels must be at least 1"),
    R("design-width-text", "design", "-C", "wide", expect="expected an integer"),
    R("design-width-float", "design", "-C", "6.5", expect="expected an integer"),
    R("design-width-huge", "design", "-C", "100000", expect="designer's limit 16384"),
    R("design-width-2^70", "design", "-C", str(2**70), expect="designer's limit 16384"),
    R("design-layers-0", "design", "-C", "64", "-L", "0", expect="--layers must be at least 1"),
    R("design-layers-huge", "design", "-C", "64", "-L", "1000000",
      expect="limit of 64 factors"),
    R("design-area-0", "design", "-C", "64", "-S", "0", expect="--kernel-area must be at least"),
    R("design-area-huge", "design", "-C", "64", "-S", str(10**9), expect="kernel area"),
    R("design-k-0", "design", "-C", "64", "-K", "0", expect="--branch-size must be at least 1"),
    R("design-k-not-divisor", "design", "-C", "100", "-K", "8", expect="does not divide"),
    R("design-k-layers-huge", "design", "-C", "64", "-K", "2", "-L", "99",
      expect="limit of 64 factors"),
    R("design-alternatives-negative", "design", "-C", "64", "--alternatives", "-1",
      expect="--alternatives must be at least 0"),
    R("design-alternatives-huge", "design", "-C", "64", "--alternatives", str(10**9),
      expect="at most 1,000"),
    R("design-check-without-sizes", "design", "-C", "64", "--check",
      expect="needs --branch-sizes"),
    R("design-sizes-without-check", "design", "-C", "64", "--branch-sizes", "1,8,8",
      expect="--branch-sizes is for --check"),
    R("design-sizes-text", "design", "-C", "64", "--check", "--branch-sizes", "1,a",
      expect="comma-separated integers"),
    R("design-sizes-zero", "design", "-C", "64", "--check", "--branch-sizes", "0,8",
      expect="--branch-sizes must be at least 1"),
    R("design-sizes-many", "design", "-C", "64", "--check", "--branch-sizes", "2," * 500,
      expect="at most 64 values"),
    R("design-sizes-empty", "design", "-C", "64", "--check", "--branch-sizes", ",",
      expect="comma-separated integers"),
    R("design-sizes-not-dividing", "design", "-C", "12", "--check", "--branch-sizes", "1,5",
      expect="does not divide"),
    R("design-strict", "design", "-C", "64", "--check", "--branch-sizes", "1,16,16",
      "--strict", expect="not C=64"),
    R("design-draw-jpg", "design", "-C", "24", "--draw", "{crafted}/b.jpg",
      expect="must end in .png or .svg or .pdf"),
    R("design-draw-under-file", "design", "-C", "24", "--draw", "{work}/notes.txt/b.png",
      expect="not a folder"),
    R("design-draw-empty", "design", "-C", "24", "--draw", "", expect="must be a path"),
    R("design-draw-long-name", "design", "-C", "24", "--draw", "{crafted}/" + "n" * 300 + ".png",
      expect="names must be at most"),
    R("design-draw-long-path", "design", "-C", "24", "--draw",
      "{crafted}/" + "d/" * 2100 + "b.png", expect="paths must be shorter"),
    C("design-draw-folder", lambda sb: (sb.crafted / "b.png").mkdir() or
      ["design", "-C", "24", "--draw", str(sb.crafted / "b.png")], expect="is a folder"),
    R("design-draw-too-wide", "design", "-C", "128", "-L", "3", "--draw", "{crafted}/b.png",
      expect="at most 64 channels"),
    R("design-unknown-flag", "design", "-C", "64", "--frobnicate",
      expect="unrecognized arguments"),
    # ---------------------------------------------------------------- models / info
    R("models-no-match", "models", "zzz*", expect="unknown model 'zzz*'"),
    R("models-typo", "models", "igcv2_fmnits", expect="did you mean igcv2_fmnist"),
    R("models-empty", "models", "", expect="pattern must be a non-empty name"),
    R("models-huge", "models", LONG, expect="at most 200 characters"),
    R("models-newline", "models", "igc\nv2", expect="one line"),
    R("models-two-patterns", "models", "a", "b", expect="unrecognized arguments"),
    R("info-unknown", "info", "resnet50", expect="unknown model 'resnet50'"),
    R("info-typo", "info", "igcv2_fmnits", expect="did you mean igcv2_fmnist"),
    R("info-empty", "info", "", expect="model name must be a non-empty name"),
    R("info-no-name", "info", expect="the following arguments are required: name"),
    R("info-size-0", "info", "igcv2_fmnist", "--input-size", "0",
      expect="--input-size must be at least 1"),
    R("info-size-huge", "info", "igcv2_fmnist", "--input-size", "100000",
      expect="--input-size must be at most 4,096"),
    R("info-size-text", "info", "igcv2_fmnist", "--input-size", "big",
      expect="expected an integer"),
    # ---------------------------------------------------------------- export
    R("export-unknown-model", "export", "resnet50", "--format", "onnx",
      expect="unknown model 'resnet50'"),
    R("export-no-format", *EXPORT, expect="required: --format"),
    R("export-format", *EXPORT, "--format", "tflite", expect="unknown export format"),
    R("export-form", *EXPORT, "--format", "onnx", "--form", "fastest",
      expect="unknown inference form"),
    R("export-batch-0", *EXPORT, "--format", "pt2", "--batch", "0",
      expect="batch must be at least 1"),
    R("export-batch-huge", *EXPORT, "--format", "pt2", "--batch", str(10**9),
      expect="batch must be at most"),
    R("export-size-0", *EXPORT, "--format", "pt2", "--input-size", "0",
      expect="input size must be at least 1"),
    R("export-size-huge", *EXPORT, "--format", "pt2", "--input-size", str(10**6),
      expect="input size must be at most"),
    R("export-size-memory", *EXPORT, "--format", "pt2", "--input-size", "16000",
      expect="GiB for activations"),
    R("export-opset-low", *EXPORT, "--format", "onnx", "--opset", "6",
      expect="ONNX opset must be at least 7"),
    R("export-opset-text", *EXPORT, "--format", "onnx", "--opset", "latest",
      expect="expected an integer"),
    R("export-int8-pt2", *EXPORT, "--format", "pt2", "--int8", expect="--int8 needs"),
    R("export-calibration-0", *EXPORT, "--format", "onnx", "--int8", "--calibration", "0",
      expect="calibration images must be at least 1"),
    R("export-eval-images-negative", *EXPORT, "--format", "onnx", "--int8",
      "--eval-images", "-1", expect="evaluation images must be at least 1"),
    R("export-out-empty", *EXPORT, "--format", "onnx", "--out", "", expect="must be a path"),
    R("export-out-folder", *EXPORT, "--format", "onnx", "--out", "{empty}",
      expect="is a folder"),
    R("export-out-under-file", *EXPORT, "--format", "onnx", "--out",
      "{work}/notes.txt/m.onnx", expect="not a folder"),
    R("export-out-long", *EXPORT, "--format", "onnx", "--out",
      "{crafted}/" + "n" * 300 + ".onnx", expect="names must be at most"),
    R("export-missing-checkpoint", "export", "{crafted}/nope.pt", "--format", "onnx",
      expect="does not exist"),
    C("export-junk-checkpoint", lambda sb: ["export", _file(sb, "j.pt", b"junk"),
                                            "--format", "onnx"], expect="corrupt"),
    C("export-empty-checkpoint", lambda sb: ["export", _file(sb, "e.pt", b""),
                                             "--format", "onnx"], expect="corrupt"),
    C("export-foreign-checkpoint", lambda sb: ["export", _foreign_checkpoint(sb),
                                               "--format", "onnx"],
      expect="not an igc checkpoint"),
    C("export-code-in-pickle", lambda sb: ["export", _pickle(sb), "--format", "onnx"],
      expect="corrupt or not a torch file"),
    R("export-empty-folder", "export", "{empty}", "--format", "onnx", expect="does not exist"),
    R("export-source-huge", "export", LONG, "--format", "onnx",
      expect="at most 4096 characters"),
    # ---------------------------------------------------------------- bench
    R("bench-nothing", "bench", expect="give at least one model name"),
    R("bench-unknown-model", "bench", "resnet50", "--forms", "naive",
      expect="unknown model 'resnet50'"),
    R("bench-form", "bench", "igcv2_fmnist", "--forms", "fast", expect="unknown form 'fast'"),
    R("bench-forms-empty", "bench", "igcv2_fmnist", "--forms", ",",
      expect="--forms names no form"),
    R("bench-repeats-0", *BENCH[:4], "--repeats", "0", expect="--repeats must be at least 1"),
    R("bench-repeats-huge", *BENCH[:4], "--repeats", str(10**7),
      expect="--repeats must be at most"),
    R("bench-threads-0", *BENCH, "--threads", "0", expect="--threads must be at least 1"),
    R("bench-threads-huge", *BENCH, "--threads", str(10**6), expect="--threads must be at most"),
    R("bench-batch-0", *BENCH, "--batch", "0", expect="batch must be at least 1"),
    R("bench-batch-memory", *BENCH, "--batch", "60000", "--input-size", "224",
      expect="GiB for activations"),
    R("bench-size-0", *BENCH, "--input-size", "0", expect="input size must be at least 1"),
    R("bench-size-text", *BENCH, "--input-size", "x", expect="expected an integer"),
    R("bench-calibrate-with-models", "bench", "igcv2_fmnist", "--calibrate",
      expect="drop the names"),
    R("bench-calibrate-device", "bench", "--calibrate", "--device", "tpu",
      expect="unknown device 'tpu'"),
    # ---------------------------------------------------------------- reproduce
    R("reproduce-nothing", "reproduce", expect="name a target"),
    R("reproduce-typo", "reproduce", "tabel2", expect="did you mean table2"),
    R("reproduce-unknown", "reproduce", "figure9x", expect="unknown reproduction target"),
    R("reproduce-empty-target", "reproduce", "", expect="target must be a non-empty name"),
    R("reproduce-budget", "reproduce", "table2", "--budget", "huge",
      expect="unknown budget 'huge'; choose from"),
    R("reproduce-data", "reproduce", "table2", "--data", "cifar11",
      expect="unknown data set 'cifar11'"),
    R("reproduce-epochs-0", "reproduce", "table2", "--epochs", "0",
      expect="--epochs must be at least 1"),
    R("reproduce-epochs-huge", "reproduce", "table2", "--epochs", str(10**9),
      expect="at most 100,000"),
    R("reproduce-seeds-0", "reproduce", "table2", "--seeds", "0",
      expect="--seeds must be at least 1"),
    R("reproduce-seeds-huge", "reproduce", "table2", "--seeds", str(10**6),
      expect="--seeds must be at most"),
    R("reproduce-jobs-0", "reproduce", "table2", "--jobs", "0", expect="--jobs must be at least"),
    R("reproduce-jobs-huge", "reproduce", "table2", "--jobs", str(10**6),
      expect="--jobs must be at most"),
    R("reproduce-threads-negative", "reproduce", "table2", "--threads", "-1",
      expect="--threads must be at least 0"),
    R("reproduce-shard", "reproduce", "table2", "--shard", "3/2", "--out", "{crafted}/r",
      expect="--shard must be i/n"),
    R("reproduce-shard-text", "reproduce", "table2", "--shard", "half", "--out",
      "{crafted}/r", expect="--shard must be i/n"),
    R("reproduce-device", "reproduce", "table2", "--device", "tpu",
      expect="unknown device 'tpu'"),
    R("reproduce-out-file", "reproduce", "table2", "--out", "{work}/notes.txt",
      expect="is a file, not a folder"),
    R("reproduce-out-empty", "reproduce", "table2", "--out", "", expect="must be a path"),
    R("reproduce-out-long", "reproduce", "table2", "--out", "{crafted}/" + "d/" * 2100,
      expect="paths must be shorter"),
    R("reproduce-docs-suffix", "reproduce", "table2-counts", "--docs", "{crafted}/r.txt",
      expect="must end in .md"),
    R("reproduce-docs-under-file", "reproduce", "table2-counts", "--docs",
      "{work}/notes.txt/r.md", expect="not a folder"),
    R("reproduce-data-dir-missing", "reproduce", "table2", "--data-dir", "{crafted}/nope",
      expect="does not exist"),
    R("reproduce-data-dir-file", "reproduce", "table2", "--data-dir", "{work}/notes.txt",
      expect="is not a folder"),
    C("reproduce-config-damaged", lambda sb: _file(sb, "r/reproduce.json", b"{") and
      ["reproduce", "table2", "--budget", "smoke", "--out", str(sb.crafted / "r")],
      expect="is damaged"),
    C("reproduce-config-list", lambda sb: _file(sb, "r/reproduce.json", b'{"config": []}')
      and ["reproduce", "table2", "--budget", "smoke", "--out", str(sb.crafted / "r")],
      expect="is damaged"),
    C("reproduce-runs-without-config", lambda sb: (sb.crafted / "r" / "table2").mkdir(
        parents=True) or ["reproduce", "table2", "--budget", "smoke", "--out",
                          str(sb.crafted / "r")], expect="holds runs but no reproduce.json"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_cli_hostile_input(row, sandbox, refused):
    if row.id == "bench-calibrate-device" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    row.check(sandbox, refused, LIMIT_S, skip=NOT_OURS)
    assert not Path("/tmp/igc-hostile-tools-pwned").exists()


def test_rows_cover_every_subcommand():
    commands = {row.id.split("-")[0] for row in ROWS}
    assert commands == {"design", "models", "info", "export", "bench", "reproduce"}
    assert len(ROWS) >= 100


def test_a_damaged_count_cache_is_rebuilt(sandbox, capsys):
    """Issue 13: the model-count cache in the user's folder is checked entry by entry; a
    damaged file or entry is recounted and rewritten, never fatal."""
    from igc.analysis.zoo import cache_path
    from igc.models.registry import model_entry, temporary_model

    base = model_entry("igcv2_fmnist")  # counted as a network the shipped table lacks
    with temporary_model("test_uncounted", base.builder, family=base.family,
                         table=base.table, dataset=base.dataset, input_size=base.input_size,
                         num_classes=base.num_classes, **base.kwargs):
        assert main(["models", "test_uncounted", "--json"]) == 0
        good = capsys.readouterr().out
        path = cache_path()
        assert path.is_file() and str(path).startswith(str(sandbox.cache))
        for damage in (b"\xff\xfe not json", b"[1, 2]", b'{"x": 1}',
                       path.read_bytes().replace(b'"params": ', b'"params": "many", "x": ')):
            path.write_bytes(damage)
            assert main(["models", "test_uncounted", "--json"]) == 0
            assert capsys.readouterr().out == good
    assert b"many" not in path.read_bytes()
