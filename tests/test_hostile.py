"""Hostile input for ``igc train / eval / plot / summarize`` and the training API, as a table.

Every row runs in a sandbox (a finished run, a run stopped mid-epoch, a user's own files
in the working folder, crafted files) under a time limit, and asserts: exit status 2 (or
:class:`IGCError` from the API), exactly one line on stderr, no traceback, and no file in
the sandbox created, changed or removed (so the previous good checkpoints are intact).
The signal rows stop real runs with SIGINT/SIGTERM and assert the checkpoint left behind
resumes with the command the run printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import snapshot
from hostile import R, Row
from PIL import Image

import igc.train.splits as splits_mod
from igc.cli import main
from igc.data import load_dataset, sources
from igc.errors import IGCError
from igc.files.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from igc.train.recipe import load_recipe, override
from igc.train.trainer import RunConfig, train

TINY, TINY_OTHER = "test_tiny_igcv2", "test_tiny_igcv2_wide"
LIMIT_S = 60  # per row: a hang fails instead of blocking the suite
pytestmark = pytest.mark.usefixtures("tiny_models", "one_thread")


def tiny_recipe(**changes):
    settings = {"epochs": 1, "batch_size": 16, "eval_batch_size": 32, "lr": 0.05,
                "schedule": "cosine", "warmup_epochs": 0.0, "log_every": 1, "eval_every": 1,
                "threads": 1, "model": TINY, "channels_last": False, **changes}
    return override(load_recipe("fashion-mnist-cpu"), list(settings.items()))


@dataclass
class Sandbox:
    """The folders a row may touch: ``work`` (the current folder, holding a user's own
    ``metrics.jsonl`` and ``notes.txt``), ``run`` (a finished run), ``mid`` (a run stopped
    inside its first epoch), ``crafted`` (files a row makes), ``empty``, ``images`` (an
    image folder data set)."""

    root: Path
    work: Path
    run: Path
    mid: Path
    crafted: Path
    empty: Path
    images: Path

    def craft_checkpoint(self, name: str, change: Callable[[dict], None],
                         source: Path | None = None) -> Path:
        """A run folder ``crafted/name`` whose checkpoint is the finished run's, changed."""
        folder = self.crafted / name
        shutil.copytree(source or self.run, folder)
        state = load_checkpoint(folder)
        del state["path"]
        change(state)
        save_checkpoint(state, folder / "checkpoint.pt")
        return folder


_TEMPLATES: dict[str, Path] = {}


def _image_folder(root: Path, bad: str | None = None) -> Path:
    """2 classes of 8x8 RGB PNGs: train/ 4 each, val/ 2 each; ``bad`` names a split whose
    first image is replaced by garbage bytes."""
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = (torch.rand(8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    if bad:
        (root / bad / "c0" / "0.png").write_bytes(b"\x89PNG not really an image")
    return root


def _templates(factory) -> dict[str, Path]:
    if not _TEMPLATES:
        base = factory.mktemp("templates")
        train(RunConfig(model=TINY, data="fashion-mnist", recipe=tiny_recipe(),
                        out=base / "run", quiet=True, device="cpu"))

        def stop(trainer, event):
            if event == "step" and trainer.state.global_step == 2:
                trainer.stop.request(signal.SIGINT)

        with pytest.raises(Exception, match="stopped at epoch 1, step 2"):
            train(RunConfig(model=TINY, data="fashion-mnist", recipe=tiny_recipe(epochs=2),
                            out=base / "mid", quiet=True, device="cpu"), callbacks=[stop])
        _TEMPLATES.update(run=base / "run", mid=base / "mid")
    return _TEMPLATES


@pytest.fixture
def sandbox(tmp_path, monkeypatch, tmp_path_factory, tiny_splits) -> Sandbox:
    splits = tiny_splits()

    def load(name, data_dir=None, download=True, **options):  # tiny data, unless a folder
        if data_dir is None:
            return splits
        return load_dataset(name, data_dir, download, **options)

    monkeypatch.setattr(splits_mod, "load_dataset", load)
    monkeypatch.setattr(sources, "_fetch", lambda url, dest: (_ for _ in ()).throw(
        AssertionError(f"tried to download {url}")))
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    monkeypatch.setenv("IGC_DATA", str(tmp_path / "cache"))
    templates = _templates(tmp_path_factory)
    sb = Sandbox(tmp_path, tmp_path / "work", tmp_path / "run", tmp_path / "mid",
                 tmp_path / "crafted", tmp_path / "empty", tmp_path / "images")
    for folder in (sb.work, sb.crafted, sb.empty):
        folder.mkdir()
    (sb.work / "metrics.jsonl").write_text('{"mine": "not igc\'s"}\n')
    (sb.work / "notes.txt").write_text("a user's notes\n")
    shutil.copytree(templates["run"], sb.run)
    shutil.copytree(templates["mid"], sb.mid)
    _image_folder(sb.images)
    monkeypatch.chdir(sb.work)
    return sb


def _crafted_recipe(sb: Sandbox, text: str | bytes, name: str = "r.toml") -> str:
    path = sb.crafted / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


class _Payload:
    """Pickled by torch.save; unpickling it would run code (weights_only refuses)."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/igc-hostile-pwned",))


def _set(key: str, value) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        state[key] = value
    return change


def _momentum_shape(state: dict) -> None:
    for entry in state["optimizer"]["state"].values():
        entry["momentum_buffer"] = torch.zeros(3)


def _bad_rng(state: dict) -> None:
    state["rng"][0]["torch"] = torch.zeros(5, dtype=torch.uint8)


def _bad_recipe(state: dict) -> None:
    state["recipe"]["lr"] = -1.0


def _truncated(sb: Sandbox) -> str:
    folder = sb.crafted / "t"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes((sb.run / "checkpoint.pt").read_bytes()[:2000])
    return str(folder)


def _metrics(sb: Sandbox, text: str) -> str:
    (sb.run / "metrics.jsonl").write_text(text)
    return str(sb.run)


def _summary(sb: Sandbox, text: str) -> str:
    folder = sb.crafted / "runs" / "a"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(text)
    return str(sb.crafted / "runs")


def _resume_crafted(name: str, change: Callable[[dict], None]):
    def argv(sb: Sandbox) -> list[str]:
        return ["train", "--quiet", "--model", TINY, "--resume", "--out",
                str(sb.craft_checkpoint(name, change))]
    return argv


def T(*args: str, expect: str, id: str) -> Row:
    """A row ``igc train --quiet ARGS`` (``{run}``, ``{mid}``, ``{crafted}``, ``{empty}``,
    ``{images}``, ``{work}`` name the sandbox's folders)."""
    return R(id, "train", "--quiet", *args, expect=expect)


def C(fn: Callable[[Sandbox], list[str]], expect: str, id: str) -> Row:
    """A row whose command line a function of the sandbox makes (crafting files first)."""
    return Row(id, fn, expect)


LONG = "x" * 5000
ROWS = [
    # ---------------------------------------------------------------- names
    T("--model", "", expect="--model must be a non-empty name", id="model-empty"),
    T("--model", "igcv2_fmnits", expect="did you mean igcv2_fmnist", id="model-typo"),
    T("--model", "a\nb", expect="one line", id="model-newline"),
    T("--model", LONG, expect="at most 200 characters", id="model-huge"),
    T("--data", "svhn", expect="unknown data set", id="data-unknown"),
    T("--data", "", expect="--data must be a non-empty name", id="data-empty"),
    T("--recipe", "", expect="--recipe must be a non-empty name", id="recipe-empty"),
    T("--recipe", "cifra", expect="did you mean cifar", id="recipe-typo"),
    T("--recipe", "{crafted}/missing.toml", expect="does not exist", id="recipe-missing"),
    T("--device", "tpu", expect="unknown device", id="device-unknown"),
    T("--device", "cuda:0", expect="no CUDA GPU", id="device-no-cuda"),
    T("--set", "learning_rate=0.1", expect="unknown recipe key", id="set-unknown-key"),
    T("--set", "schedule=cosin", expect="did you mean cosine", id="set-schedule-typo"),
    T("--set", "noequals", expect="KEY=VALUE", id="set-no-equals"),
    T("--set", "eval_augment=[\"blur\"]", expect="unknown augmentation", id="set-augment"),
    T("--set", "lr.x=1", expect="only tables", id="set-dotted"),
    # ---------------------------------------------------------------- numbers
    T("--epochs", "0", expect="epochs must be at least 1", id="epochs-0"),
    T("--epochs", "1000000000", expect="at most 100,000", id="epochs-huge"),
    T("--epochs", "ten", expect="expected an integer", id="epochs-text"),
    T("--batch-size", "0", expect="batch size must be at least 1", id="batch-0"),
    T("--batch-size", "-5", expect="batch size must be at least 1", id="batch-negative"),
    T("--batch-size", str(10**12), expect="at most 1,048,576", id="batch-huge"),
    T("--batch-size", "4096", "--out", "{crafted}/r", expect="too few images",
      id="batch-over-split"),
    T("--lr", "-1", expect="lr must be a positive number", id="lr-negative"),
    T("--lr", "nan", expect="finite", id="lr-nan"),
    T("--lr", "inf", expect="finite", id="lr-inf"),
    T("--lr", "1e9", expect="at most 1000", id="lr-huge"),
    T("--lr", "fast", expect="expected a number", id="lr-text"),
    T("--seed", "-1", expect="seed must be at least 0", id="seed-negative"),
    T("--seed", str(2**64), expect="seed must be at most", id="seed-2^64"),
    T("--seed", "1.5", expect="expected an integer", id="seed-float"),
    T("--seeds", "0", expect="--seeds must be at least 1", id="seeds-0"),
    T("--seeds", "100000", expect="at most 1,000", id="seeds-huge"),
    T("--seed", str(2**63 - 1), "--seeds", "2", "--out", "{crafted}/s",
      expect="the last seed must be at most", id="seeds-overflow"),
    T("--workers", "-1", expect="--workers must be at least 0", id="workers-negative"),
    T("--workers", "100000", expect="at most 256", id="workers-huge"),
    T("--set", "lr=abc", expect="'lr' must be a number", id="set-lr-text"),
    T("--set", "threads=-1", expect="threads must be at least 0", id="set-threads"),
    T("--set", "image_size=100000", expect="image_size must be at most", id="set-image"),
    T("--set", "milestones=[3,2]", expect="milestones must increase", id="set-milestones"),
    T("--set", "ema_decay=1.5", expect="ema_decay must be in (0, 1)", id="set-ema-decay"),
    T("--set", "seed=99999999999999999999", expect="seed must be at most", id="set-seed"),
    T("--set", "model_args.width=1000000000", expect="is over 65,536",
      id="model-option-huge"),
    T("--set", "model_args.width=60000", "--batch-size", "100000", "--out", "{crafted}/r",
      expect="GiB of activations", id="model-too-big-for-memory"),
    T("--set", "model_args.nope=1", "--out", "{crafted}/r", expect="bad option",
      id="model-option-unknown"),
    # ---------------------------------------------------------------- paths and folders
    T("--out", "", expect="--out must be a path", id="out-empty"),
    T("--out", "{work}/notes.txt", expect="is a file, not a folder", id="out-is-file"),
    T("--out", "{work}/notes.txt/sub", expect="cannot write", id="out-under-file"),
    T("--out", "{crafted}/" + "d/" * 2100, expect="paths must be shorter", id="out-too-long"),
    T("--out", "{crafted}/" + "n" * 300, expect="names must be at most",
      id="out-component-too-long"),
    T("--out", "{run}", expect="already holds a run", id="out-existing-run"),
    T("--out", ".", "--force", expect="no .igc-run marker", id="force-unmarked-cwd"),
    T("--out", "{work}", "--force", expect="igc did not make it", id="force-unmarked-dir"),
    C(lambda sb: (sb.run / "curves.png").mkdir() or
      ["train", "--quiet", "--out", str(sb.run), "--force"],
      expect="is a folder, which igc never writes", id="force-run-file-is-folder"),
    T("--data-dir", "{crafted}/nope", expect="--data-dir", id="data-dir-missing"),
    T("--data-dir", "{empty}", "--no-download", expect="is not in --data-dir",
      id="data-dir-without-data"),
    T("--data-dir", "{work}/notes.txt", expect="is not a folder", id="data-dir-is-file"),
    C(lambda sb: (sb.empty / "train-images-idx3-ubyte.gz").write_bytes(b"junk") and
      ["train", "--quiet", "--data-dir", str(sb.empty), "--out", str(sb.crafted / "r")],
      expect="checksum mismatch", id="data-dir-corrupt-file"),
    T("--data", "imagefolder", "--data-dir", "{empty}", "--model", TINY, "--out", "{crafted}/r",
      expect="train/<class>", id="imagefolder-empty"),
    C(lambda sb: (sb.images / "train" / "c1" / "0.png").write_bytes(b"junk") and
      ["train", "--quiet", "--data", "imagefolder", "--data-dir", str(sb.images),
       "--model", TINY, "--set", "image_size=8", "--set", "resize_size=8", "--workers", "2",
       "--batch-size", "2", "--out", str(sb.crafted / "r")], expect="cannot decode image",
      id="worker-bad-image"),
    # ---------------------------------------------------------------- recipes
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(sb, "epochs = [\n")],
      expect="not valid TOML", id="recipe-bad-toml"),
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(sb, 'epochs = "ten"\n')],
      expect="must be an integer", id="recipe-wrong-type"),
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(sb, "epoch = 3\n")],
      expect="did you mean epochs", id="recipe-unknown-key"),
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(sb, b"\xff\xfe\x00\x01")],
      expect="cannot read recipe", id="recipe-binary"),
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(
        sb, "model_args = {a = [[[[[[1]]]]]]}\n")], expect="model_args", id="recipe-nesting"),
    C(lambda sb: ["train", "--quiet", "--recipe", _crafted_recipe(sb, "x" * (2 << 20))],
      expect="over 1 MiB", id="recipe-huge-file"),
    # ---------------------------------------------------------------- resume
    T("--out", "{crafted}/new", "--resume", expect="no checkpoint", id="resume-nothing"),
    T("--out", "{mid}", "--resume", "--batch-size", "32", expect="--batch-size 16",
      id="resume-mid-epoch-new-batch"),
    T("--out", "{run}", "--resume", "--model", TINY_OTHER, expect="of model",
      id="resume-other-model"),
    T("--out", "{run}", "--resume", "--model", TINY, "--data", "mnist",
      expect="was trained on fashion-mnist", id="resume-other-data"),
    C(lambda sb: ["train", "--quiet", "--model", TINY, "--out", _truncated(sb), "--resume"],
      expect="corrupt", id="resume-truncated"),
    *[C(_resume_crafted(key, change), expect=expect, id=f"resume-{key}")
      for key, change, expect in [
          ("classes-1e9", _set("num_classes", 10**9), "num_classes must be an integer in"),
          ("state-dict-list", _set("state_dict", [1, 2]), "state_dict must be a table"),
          ("epoch-negative", _set("epoch", -1), "epoch must be an integer in"),
          ("version-99", _set("version", 99), "upgrade igc"),
          ("format-foreign", _set("format", "other"), "not an igc checkpoint"),
          ("model-args-huge", _set("model_args", {"width": 10**12}), "is over 65,536"),
          ("optimizer-shape", _momentum_shape, "momentum_buffer of shape"),
          ("rng-bad", _bad_rng, "random-number state"),
          ("recipe-bad", _bad_recipe, "holds a bad recipe"),
          ("rng-missing", lambda s: s.pop("rng"), "lacks rng"),
          ("partial-wrong", _set("partial", {"loss": "x"}), "partial"),
          ("classes-names", _set("classes", ["a"]), "classes has 1 entries"),
      ]],
    C(lambda sb: (sb.crafted / "p").mkdir() or torch.save(
        {"format": "igc-checkpoint", "x": _Payload()}, sb.crafted / "p" / "checkpoint.pt")
      or ["train", "--quiet", "--model", TINY, "--out", str(sb.crafted / "p"), "--resume"],
      expect="corrupt or not a torch file", id="resume-code-in-pickle"),
    # ---------------------------------------------------------------- eval
    Row("eval-missing", lambda sb: ["eval", str(sb.crafted / "nope.pt")], "does not exist"),
    Row("eval-batch-0", lambda sb: ["eval", str(sb.run), "--batch-size", "0"],
        "batch size must be at least 1"),
    Row("eval-batch-huge", lambda sb: ["eval", str(sb.run), "--batch-size", "9" * 20],
        "at most 1,048,576"),
    Row("eval-no-ema", lambda sb: ["eval", str(sb.run), "--ema"], "no moving average"),
    Row("eval-folder-without-checkpoint", lambda sb: ["eval", str(sb.empty)],
        "does not exist"),
    Row("eval-classes-1e9", lambda sb: ["eval", str(sb.craft_checkpoint(
        "c", _set("num_classes", 10**9)))], "num_classes"),
    Row("eval-device", lambda sb: ["eval", str(sb.run), "--device", "tpu"], "unknown device"),
    Row("eval-junk", lambda sb: (sb.crafted / "j.pt").write_bytes(b"junk") and
        ["eval", str(sb.crafted / "j.pt")], "corrupt"),
    Row("eval-wrong-weights", lambda sb: ["eval", str(sb.craft_checkpoint(
        "w", _set("model", TINY_OTHER)))], "does not fit model"),
    # ---------------------------------------------------------------- plot
    Row("plot-missing", lambda sb: ["plot", str(sb.crafted / "nope")], "does not exist"),
    Row("plot-jpg", lambda sb: ["plot", str(sb.run), "--out", str(sb.crafted / "c.jpg")],
        "must end in .png"),
    Row("plot-out-under-file", lambda sb: [
        "plot", str(sb.run), "--out", str(sb.work / "notes.txt" / "c.png")], "cannot write"),
    Row("plot-metrics-wrong-type", lambda sb: ["plot", _metrics(
        sb, '{"epoch": 1, "train_loss": 1.0, "train_acc": 50, "lr": 0.1, "top1": "abc"}\n')],
        "top1 must be a number in [0, 100] or null"),
    Row("plot-metrics-not-json", lambda sb: ["plot", _metrics(sb, "nope\n{}\n")],
        "line 1 is not JSON"),
    Row("plot-metrics-list", lambda sb: ["plot", _metrics(sb, "[1, 2]\n")],
        "must be a table"),
    Row("plot-metrics-empty", lambda sb: ["plot", _metrics(sb, "")], "is empty"),
    Row("plot-metrics-missing-field", lambda sb: ["plot", _metrics(sb, '{"epoch": 1}\n')],
        "lacks train_loss"),
    Row("plot-title-huge", lambda sb: ["plot", str(sb.run), "--title", "t" * 500,
                                        "--out", str(sb.crafted / "c.png")],
        "at most 200 characters"),
    Row("plot-run-json-damaged", lambda sb: (sb.run / "run.json").write_text(
        '{"model": 5, "data": "x"}') and ["plot", str(sb.run), "--out",
                                         str(sb.crafted / "c.png")],
        "model must be a string"),
    # ---------------------------------------------------------------- summarize
    Row("summarize-missing", lambda sb: ["summarize", str(sb.crafted / "nope")],
        "does not exist"),
    Row("summarize-not-json", lambda sb: ["summarize", _summary(sb, "{")], "is not JSON"),
    Row("summarize-top1-200", lambda sb: ["summarize", _summary(
        sb, '{"model": "m", "data": "d", "top1": 200}')], "top1 must be a number in [0, 100]"),
    Row("summarize-list", lambda sb: ["summarize", _summary(sb, "[]")], "must be a table"),
    Row("summarize-no-runs", lambda sb: ["summarize", str(sb.empty)], "holds no runs"),
    Row("summarize-file", lambda sb: ["summarize", str(sb.work / "notes.txt")],
        "is not a folder"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_cli_hostile_input(row, sandbox, refused):
    if row.id == "device-no-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    row.check(sandbox, refused, LIMIT_S)
    assert not Path("/tmp/igc-hostile-pwned").exists()


def _config(sb: Sandbox, **kw) -> RunConfig:
    return RunConfig(**{"model": TINY, "data": "fashion-mnist", "recipe": tiny_recipe(),
                        "out": sb.crafted / "r", "quiet": True, "device": "cpu", **kw})


API_ROWS = [
    ("workers-negative", lambda sb: train(_config(sb, num_workers=-1)), "--workers"),
    ("model-empty", lambda sb: train(_config(sb, model="")), "model"),
    ("recipe-not-a-recipe", lambda sb: train(_config(sb, recipe={"lr": 1})), "Recipe"),
    ("out-under-file", lambda sb: train(_config(sb, out=sb.work / "notes.txt" / "r")),
     "cannot write"),
    ("resume-mid-batch", lambda sb: train(_config(
        sb, out=sb.mid, resume=True, overrides=[("batch_size", 32)])), "--batch-size 16"),
    ("eval-batch-0", lambda sb: __import__("igc.train.evaluate", fromlist=["x"])
     .evaluate_checkpoint(sb.run, batch_size=0), "batch size"),
    ("plot-no-runs", lambda sb: __import__("igc.viz.curves", fromlist=["x"])
     .plot_runs([], sb.crafted / "c.png"), "give 1 to 50"),
    ("plot-svg", lambda sb: __import__("igc.viz.curves", fromlist=["x"])
     .plot_runs([sb.run], sb.crafted / "c.svg"), "must end in .png"),
    ("recipe-empty", lambda sb: load_recipe(""), "empty"),
    ("override-seed", lambda sb: override(tiny_recipe(), [("seed", 2**70)]),
     "seed must be at most"),
    ("resolve-empty-recipe", lambda sb: __import__("igc.train.resolve", fromlist=["x"])
     .resolve_run(recipe=""), "--recipe is empty"),
    ("seeds-0", lambda sb: __import__("igc.train.resolve", fromlist=["x"])
     .train_seeds(_config(sb), 0), "--seeds must be at least 1"),
    ("checkpoint-classes", lambda sb: load_checkpoint(sb.craft_checkpoint(
        "c", _set("num_classes", 10**9))), "num_classes"),
    ("resumable-missing", lambda sb: check_resumable(load_checkpoint(sb.craft_checkpoint(
        "o", lambda s: s.pop("optimizer")))), "lacks optimizer"),
]


@pytest.mark.parametrize("case", API_ROWS, ids=[c[0] for c in API_ROWS])
def test_api_hostile_input(case, sandbox, time_limit):
    _, call, expect = case
    before = snapshot(sandbox.root)
    time_limit(LIMIT_S)
    with pytest.raises(IGCError) as info:
        call(sandbox)  # crafted files (the row's own) go below crafted/
    message = str(info.value)
    assert "\n" not in message and expect in message, message
    outside = {k: v for k, v in snapshot(sandbox.root).items() if not k.startswith("crafted/")}
    assert outside == {k: v for k, v in before.items() if not k.startswith("crafted/")}
    assert not (sandbox.crafted / "r").exists()  # no run folder left by a failed run


# ------------------------------------------------------------------------------ signals
def _killer(at_step: int, signum: int) -> Callable:
    def callback(trainer, event):
        if event == "step" and trainer.state.global_step == at_step:
            os.kill(os.getpid(), signum)
    return callback


SIGNAL_ROWS = [
    ("sigint-mid-epoch", signal.SIGINT, 3, [], 130),
    ("sigterm-mid-epoch", signal.SIGTERM, 2, [], 143),
    ("sigint-epoch-end", signal.SIGINT, 6, ["--epochs", "2"], 130),
    ("sigint-during-resume", signal.SIGINT, 4, ["--resume"], 130),
    ("sigint-image-folder", signal.SIGINT, 1, ["--data", "imagefolder", "--data-dir",
                                              "{images}", "--set", "image_size=8",
                                              "--set", "resize_size=8", "--batch-size", "2",
                                              "--workers", "1", "--epochs", "2"], 130),
]


@pytest.mark.slow
@pytest.mark.parametrize("row", SIGNAL_ROWS, ids=[r[0] for r in SIGNAL_ROWS])
def test_signal_saves_a_checkpoint_that_resumes(row, sandbox, capfd, time_limit,
                                                monkeypatch):
    _, signum, step, extra, code = row
    import igc.train.trainer as trainer_mod

    out = sandbox.mid if "--resume" in extra else sandbox.crafted / "r"
    own = trainer_mod.default_callbacks
    monkeypatch.setattr(trainer_mod, "default_callbacks",
                        lambda quiet: [*own(quiet), _killer(step, signum)])
    args = [a.format(**sandbox.__dict__) for a in extra]
    model = ["--model", TINY] if "--resume" not in extra else []
    before = {k: v for k, v in snapshot(sandbox.root).items()
              if not k.startswith(str(out.relative_to(sandbox.root)))}
    capfd.readouterr()
    time_limit(LIMIT_S)
    assert main(["train", "--quiet", *model, "--out", str(out), "--set", "threads=1",
                 "--batch-size", "16", *args]) == code
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"igc: {signal.Signals(signum).name}: stopped" in lines[0]
    command = lines[0].split("continue with: ")[1]
    if "--data-dir" in args:
        assert f"--data-dir {sandbox.images}" in command
    after = {k: v for k, v in snapshot(sandbox.root).items()
             if not k.startswith(str(out.relative_to(sandbox.root)))}
    assert after == before  # nothing outside the run folder changed
    check_resumable(load_checkpoint(out))
    monkeypatch.setattr(trainer_mod, "default_callbacks", own)
    assert main([*shlex.split(command)[1:], "--quiet"]) == 0  # the printed command resumes
