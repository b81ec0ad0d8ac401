"""The numbered cases of the hardening issue, each as a test that failed before the fix:
resume across a batch-size change, what --force may delete, save before evaluate, a failed
resume keeps the run's metadata, --data-dir never falls back, worker errors in one line,
the continue-with command, interrupted set-up, stale temporary files, EMA exactness and
the callback events."""

from __future__ import annotations

import json
import os
import shlex
import signal
import warnings
from pathlib import Path

import pytest
import torch

import igc.train.trainer as trainer_mod
from igc.cli import main
from igc.data import sources
from igc.errors import IGCError
from igc.files.checkpoint import load_checkpoint
from igc.files.records import read_metrics
from igc.files.run_dir import MARKER
from igc.train.recipe import load_recipe, override
from igc.train.trainer import Interrupted, RunConfig, TrainingDiverged, train

TINY = "test_tiny_igcv2"
pytestmark = pytest.mark.usefixtures("tiny_models", "one_thread")


def tiny_recipe(**changes):
    settings = {"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "lr": 0.05,
                "schedule": "cosine", "warmup_epochs": 0.5, "log_every": 1, "eval_every": 1,
                "threads": 1, "model": TINY, "channels_last": False,
                "train_augment": ["pad_crop:1", "hflip", "normalize"], **changes}
    return override(load_recipe("fashion-mnist-cpu"), list(settings.items()))


def config(out: Path, recipe=None, **kw) -> RunConfig:
    return RunConfig(model=TINY, data="fashion-mnist", recipe=recipe or tiny_recipe(),
                     out=out, quiet=True, device="cpu", **kw)


def stop_at(step: int, signum: int = signal.SIGINT, real: bool = False):
    def callback(trainer, event):
        if event == "step" and trainer.state.global_step == step:
            if real:
                os.kill(os.getpid(), signum)
            else:
                trainer.stop.request(signum)
    return callback


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("igc: error: ") and "Traceback" not in err
    return err


# ------------------------------------------------------------------ 1: batch size on resume
def test_resume_mid_epoch_with_another_batch_size_is_refused(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    with pytest.raises(Interrupted):
        train(config(out), callbacks=[stop_at(2)])
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--batch-size", "32", "--quiet"]) == 2
    err = one_error_line(capsys)
    assert "inside epoch 1 after 32 images at batch 16" in err and "--batch-size 16" in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_batch_size_change_at_an_epoch_boundary_trains_every_image(tmp_path, tiny_data,
                                                                   capsys):
    out = tmp_path / "r"
    with pytest.raises(Interrupted):  # stops after epoch 1 (its last step is step 6)
        train(config(out, tiny_recipe(epochs=3)), callbacks=[stop_at(6)])
    assert main(["train", "--out", str(out), "--resume", "--batch-size", "32", "--quiet",
                 "--set", "threads=1"]) == 0
    err = capsys.readouterr().err
    assert "batch_size 16 -> 32" in err  # reported with --quiet
    records = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["images"] for r in records] == [96, 96, 96]  # every image of every epoch
    assert [r["step"] for r in records] == [6, 9, 12]  # 6 steps of 16, then 3 of 32
    state = load_checkpoint(out)
    assert state["recipe"]["batch_size"] == 32 and state["loader"]["batch_size"] == 32


# ------------------------------------------------------------------ 2: --force
def test_empty_out_and_unmarked_folders_are_never_touched(tmp_path, tiny_data, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("my own file\n")
    assert main(["train", "--out", "", "--force", "--quiet"]) == 2
    assert "--out must be a path" in one_error_line(capsys)
    assert main(["train", "--model", TINY, "--out", ".", "--force", "--quiet"]) == 2
    assert "no .igc-run marker" in one_error_line(capsys)
    assert (tmp_path / "metrics.jsonl").read_text() == "my own file\n"


def test_force_removes_only_igc_files_and_only_once_the_new_run_saves(tmp_path, tiny_data,
                                                                      capsys):
    out = tmp_path / "r"
    train(config(out, tiny_recipe(epochs=1)))
    assert (out / MARKER).is_file()
    (out / "notes.txt").write_text("mine")
    (out / "curves.png").write_bytes(b"old plot")
    old = (out / "checkpoint.pt").read_bytes()
    # a forced run that fails before its first checkpoint leaves the old run whole
    assert main(["train", "--model", "test_fixed_input", "--out", str(out), "--force",
                 "--quiet"]) == 2
    assert "cannot take 8x8 images" in one_error_line(capsys)
    assert (out / "checkpoint.pt").read_bytes() == old and (out / "curves.png").exists()
    assert main(["train", "--model", TINY, "--out", str(out), "--force", "--quiet",
                 "--epochs", "1", "--batch-size", "32", "--set", "threads=1"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # not igc's: kept
    assert not (out / "curves.png").exists()  # igc's plot of the old run: removed
    assert [r["images"] for r in read_metrics(out / "metrics.jsonl")] == [96]


def test_force_decides_everything_before_deleting(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    train(config(out, tiny_recipe(epochs=1)))
    (out / "summary.json").unlink()
    (out / "summary.json").mkdir()  # a run file igc cannot have written
    files = sorted(p.name for p in out.iterdir())
    assert main(["train", "--model", TINY, "--out", str(out), "--force", "--quiet"]) == 2
    assert "is a folder, which igc never writes" in one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == files


# ------------------------------------------------------------------ 4: save, then evaluate
def test_failed_evaluation_keeps_the_trained_epoch(tmp_path, tiny_data, monkeypatch):
    out = tmp_path / "r"
    real = trainer_mod.evaluate
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the evaluation of epoch 2
            raise IGCError("cannot decode image val/3.png (truncated); delete or replace it")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", flaky)
    with pytest.raises(IGCError, match="cannot decode image"):
        train(config(out))
    state = load_checkpoint(out)
    assert state["epoch"] == 2 and state["pending_eval"]  # the trained epoch was saved
    assert [r["epoch"] for r in read_metrics(out / "metrics.jsonl")] == [1]
    result = train(config(out, resume=True))  # the image fixed: evaluate, then finish
    assert result.epochs == 2 and result.top1 is not None
    records = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["top1"] == result.top1
    straight = train(config(tmp_path / "s"))
    assert straight.top1 == pytest.approx(result.top1)


@pytest.mark.slow
def test_bad_test_image_in_an_image_folder(tmp_path, monkeypatch, capsys):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in range(2):
            (tmp_path / "d" / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                pixels = (torch.rand(8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / "d" / split / f"c{c}" / f"{i}.png")
    (tmp_path / "d" / "val" / "c1" / "1.png").write_bytes(b"not an image")
    out = tmp_path / "r"
    args = ["train", "--model", TINY, "--data", "imagefolder", "--data-dir",
            str(tmp_path / "d"), "--set", "image_size=8", "--set", "resize_size=8",
            "--batch-size", "4", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "cannot decode image" in one_error_line(capsys)
    assert load_checkpoint(out)["epoch"] == 1  # trained epoch kept
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "val" / "c1" / "1.png")
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "top-1" in capsys.readouterr().out


# ------------------------------------------------------------------ 5: failed resume
def test_failed_resume_does_not_rewrite_the_metadata(tmp_path, tiny_data):
    out = tmp_path / "r"
    train(config(out, tiny_recipe(epochs=1)))
    saved = {n: (out / n).read_bytes() for n in ("recipe.toml", "run.json", "checkpoint.pt")}

    def poison(trainer, event):
        if event == "step" and trainer.state.global_step == 8:
            with torch.no_grad():
                next(trainer.state.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged):
        train(config(out, resume=True, overrides=[("epochs", 3), ("lr", 0.07)]),
              callbacks=[poison])
    assert {n: (out / n).read_bytes() for n in saved} == saved


# ------------------------------------------------------------------ 8: the smaller cases
def test_data_dir_is_the_only_place_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "system",)})
    monkeypatch.setenv("IGC_DATA", str(tmp_path / "cache"))
    (tmp_path / "system").mkdir()
    (tmp_path / "mine").mkdir()
    for f in sources.SOURCES["fashion-mnist"].resources:  # a "system copy" igc would take
        (tmp_path / "system" / f.filename).write_bytes(b"x")
    assert main(["train", "--model", TINY, "--data-dir", str(tmp_path / "mine"),
                 "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = one_error_line(capsys)
    assert f"is not in --data-dir {tmp_path / 'mine'}" in err and "checksum" not in err


def test_data_origin_is_reported(tmp_path):
    from igc.data import load_dataset

    folder = tmp_path / "d"
    for split, n in (("train", 1), ("val", 1)):
        (folder / split / "a").mkdir(parents=True)
        from PIL import Image

        for i in range(n):
            Image.new("RGB", (8, 8)).save(folder / split / "a" / f"{i}.png")
    assert load_dataset("imagefolder", folder, image_size=8, resize_size=8).origin == \
        str(folder)


def test_continue_command_names_every_option_needed(tmp_path, tiny_data):
    c = config(tmp_path / "r x", data_dir=str(tmp_path), num_workers=2, download=False)
    c.device = "cpu"
    command = c.resume_command()
    words = shlex.split(command)
    assert words[:2] == ["igc", "train"] and words[-1] == "--resume"
    for flag, value in (("--model", TINY), ("--data", "fashion-mnist"),
                        ("--out", str(tmp_path / "r x")), ("--data-dir", str(tmp_path)),
                        ("--device", "cpu"), ("--workers", "2")):
        assert words[words.index(flag) + 1] == value
    assert "--no-download" in words


def test_interrupted_setup_leaves_nothing_and_both_commands_agree(tmp_path, tiny_data,
                                                                  monkeypatch, capsys):
    out = tmp_path / "r"
    real = trainer_mod.B.build_loaders

    def interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod.B, "build_loaders", interrupt)
    # Python's own SIGINT handler, whatever this process inherited: a suite started as a
    # background job of a non-interactive shell starts with SIGINT ignored (POSIX), and
    # Python then installs no handler; this was seen when CI was started with `... &`
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    if inherited is not signal.default_int_handler:
        warnings.warn(f"SIGINT was {inherited!r} in this process (inherited, or left by an "
                      "earlier test); this test sets Python's own handler", stacklevel=1)
    args = ["train", "--model", TINY, "--out", str(out), "--quiet", "--epochs", "1",
            "--batch-size", "16", "--set", "threads=1"]
    try:
        code = main(args)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert code == 130
    assert not out.exists()  # no empty run folder left behind
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "start the run without --resume" in one_error_line(capsys)
    monkeypatch.setattr(trainer_mod.B, "build_loaders", real)
    assert main(args) == 0  # the plain re-run does not ask for --resume


def test_early_errors_leave_no_folder_and_stale_temp_files_go(tmp_path, tiny_data, capsys):
    out = tmp_path / "new"
    assert main(["train", "--model", "test_fixed_input", "--out", str(out), "--quiet"]) == 2
    assert not out.exists()
    run = tmp_path / "r"
    with pytest.raises(Interrupted):
        train(config(run), callbacks=[stop_at(2)])
    stale = run / ".checkpoint.pt.tmp999999"  # a process killed while saving
    stale.write_bytes(b"half a checkpoint")
    train(config(run, resume=True))
    assert not stale.exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [MARKER]


def test_messages_are_cut_at_word_boundaries():
    from hypothesis import given
    from hypothesis import strategies as st

    from igc.formatting import shorten

    @given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=12), min_size=1,
                    max_size=40), st.integers(10, 120))
    def check(words, width):
        text = " ".join(words)
        short = shorten(text, width)
        assert len(short) <= width and "\n" not in short
        if short == text:
            return
        assert short.endswith("…")
        kept = short[:-1].split(" ")
        # every kept word is a whole word of the text, except a single over-long first one
        assert kept == words[:len(kept)] or (len(kept) == 1 and words[0].startswith(kept[0]))

    check()


# ------------------------------------------------------------------ EMA and callbacks
def test_ema_is_evaluated_checkpointed_and_resumes_exactly(tmp_path, tiny_data, capsys):
    recipe = tiny_recipe(ema=True, ema_decay=0.9)
    straight = train(config(tmp_path / "a", recipe))
    assert straight.ema_top1 is not None
    with pytest.raises(Interrupted):
        train(config(tmp_path / "b", recipe), callbacks=[stop_at(8, real=True)])
    train(config(tmp_path / "b", recipe, resume=True))
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert a["ema_state_dict"].keys() == b["ema_state_dict"].keys()
    for key, value in a["ema_state_dict"].items():
        assert torch.equal(value, b["ema_state_dict"][key]), key
    assert any(not torch.equal(a["ema_state_dict"][f"module.{k}"], v)  # an average, not a copy
               for k, v in a["state_dict"].items() if v.is_floating_point())
    records = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert records[-1]["ema_top1"] == pytest.approx(straight.ema_top1)
    assert main(["eval", str(tmp_path / "a"), "--ema", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == "ema" and report["top1"] == pytest.approx(straight.ema_top1)


def test_callback_events_and_the_checkpoint_before_evaluation(tmp_path, tiny_data,
                                                             monkeypatch):
    events = []
    seen_pending = []

    def record(trainer, event):
        if event != "step":
            events.append(event)

    real = trainer_mod.evaluate

    def spy(*args, **kwargs):
        seen_pending.append(load_checkpoint(tmp_path / "r")["pending_eval"])
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", spy)
    train(config(tmp_path / "r", tiny_recipe(log_every=3)), callbacks=[record])
    one_epoch = ["epoch_start", "log", "log", "trained", "epoch"]
    assert events == ["start", *one_epoch, *one_epoch, "end"]
    assert seen_pending == [True, True]  # every evaluation ran after its epoch was saved


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tmp_path):
    """A real process killed with SIGKILL after its first checkpoint resumes to bitwise
    the weights of a run that was never stopped (zoo model, image folder on disk)."""
    import subprocess
    import sys
    import time

    from PIL import Image

    g = torch.Generator().manual_seed(1)
    for split, n in (("train", 8), ("val", 2)):
        for c in range(2):
            (tmp_path / "d" / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                pixels = (torch.rand(12, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / "d" / split / f"c{c}" / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}

    def command(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "igc", "train", "--model", "igcv2_fmnist", "--data",
                "imagefolder", "--data-dir", str(tmp_path / "d"), "--out", str(out),
                "--epochs", "30", "--batch-size", "2", "--set", "image_size=12",
                "--set", "resize_size=12", "--set", "threads=1", "--set", "eval_every=0",
                "--quiet", *extra]

    subprocess.run(command(tmp_path / "a"), env=env, check=True, capture_output=True,
                   timeout=600)
    victim = subprocess.Popen(command(tmp_path / "b"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (tmp_path / "b" / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    victim.kill()  # SIGKILL: no handler runs
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    subprocess.run(command(tmp_path / "b", "--resume"), env=env, check=True,
                   capture_output=True, timeout=600)
    a = load_checkpoint(tmp_path / "a")["state_dict"]
    b = load_checkpoint(tmp_path / "b")["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
