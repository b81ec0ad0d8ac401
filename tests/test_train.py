"""Training, checkpoints, resume, interruption, metrics, eval, plot, summarize and the CLI's
bad-input handling, on a tiny registered network and tiny generated data (fast)."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from igc.cli import main
from igc.errors import IGCError
from igc.train.checkpoint import load_checkpoint, save_checkpoint
from igc.train.metrics import read_jsonl
from igc.train.recipe import load_recipe, override
from igc.train.trainer import Interrupted, RunConfig, TrainingDiverged, train

TINY = "test_tiny_igcv2"
TINY_OTHER = "test_tiny_igcv2_wide"
FIXED = "test_fixed_input"


pytestmark = pytest.mark.usefixtures("tiny_models", "one_thread")


def tiny_recipe(**changes):
    base = load_recipe("fashion-mnist-cpu")
    settings = {"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "lr": 0.05,
                "schedule": "cosine", "warmup_epochs": 0.5, "log_every": 1, "eval_every": 1,
                "threads": 1, "model": TINY, **changes}
    return override(base, list(settings.items()))


def config(out: Path, recipe=None, **kw) -> RunConfig:
    return RunConfig(model=kw.pop("model", TINY), data="fashion-mnist",
                     recipe=recipe or tiny_recipe(), out=out, quiet=True, device="cpu", **kw)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


# ------------------------------------------------------------------ resume and interrupts
def _stop_at(step: int, signum: int = signal.SIGINT, real_signal: bool = False):
    def callback(trainer, event):
        if event == "step" and trainer.state.global_step == step:
            if real_signal:
                os.kill(os.getpid(), signum)
            else:
                trainer.stop.request(signum)
    return callback


@pytest.mark.parametrize("stop_step", [6, 3], ids=["epoch-boundary", "mid-epoch"])
def test_resume_gives_same_weights(tmp_path, tiny_data, stop_step):
    recipe = tiny_recipe(train_augment=["pad_crop:1", "hflip", "normalize"])
    straight = train(config(tmp_path / "a", recipe), splits=tiny_data)
    assert straight.epochs == 2
    with pytest.raises(Interrupted) as info:
        train(config(tmp_path / "b", recipe), splits=tiny_data,
              callbacks=[_stop_at(stop_step, real_signal=True)])
    assert info.value.code == 130 and "--resume" in str(info.value)
    state = load_checkpoint(tmp_path / "b")
    assert state["global_step"] == stop_step and state["epoch"] == stop_step // 6
    resumed = train(config(tmp_path / "b", recipe, resume=True), splits=tiny_data)
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert resumed.top1 == pytest.approx(straight.top1)
    a = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    b = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert [r["epoch"] for r in b] == [1, 2]
    for ra, rb in zip(a, b):
        for key in ("train_loss", "train_acc", "test_loss", "top1", "top5", "lr"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-9), key


def test_sigterm_saves_and_exits_143(tmp_path, tiny_data):
    with pytest.raises(Interrupted) as info:
        train(config(tmp_path / "r"), splits=tiny_data,
              callbacks=[_stop_at(2, signal.SIGTERM)])
    assert info.value.code == 143 and "SIGTERM" in str(info.value)
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert state["step_in_epoch"] == 2 and state["model"] == TINY


class _CompilerKilled(RuntimeError):
    """What a step raises when the signal killed a compiler it was running."""


@pytest.mark.parametrize("signalled", [True, False], ids=["signalled", "no-signal"])
def test_a_step_broken_by_the_signal_ends_as_interrupted(tmp_path, tiny_data, signalled):
    """SIGTERM that breaks the step in progress (torch.compile's compiler killed under it):
    one Interrupted line with the resume command, not the step's traceback; the same
    failure without a signal still raises as itself."""
    def breaks(trainer, event):
        if event == "step" and trainer.state.global_step == 8:
            if signalled:
                trainer.stop.request(signal.SIGTERM)
            raise _CompilerKilled("C++ compile error: g++ killed")

    if not signalled:
        with pytest.raises(_CompilerKilled):
            train(config(tmp_path / "r"), splits=tiny_data, callbacks=[breaks])
        return
    with pytest.raises(Interrupted) as info:
        train(config(tmp_path / "r"), splits=tiny_data, callbacks=[breaks])
    text = str(info.value)
    assert info.value.code == 143 and "\n" not in text
    assert "_CompilerKilled" in text and "--resume" in text and "is kept" in text
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["epoch"] == 1


def test_resume_of_finished_run_and_cli_resume(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    assert main(["train", "--model", TINY, "--out", str(out), "--epochs", "1",
                 "--batch-size", "16", "--quiet", "--set", "threads=1"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    again = capsys.readouterr().out.strip()
    assert first.split(", top-1")[1].split(",")[0] == again.split(", top-1")[1].split(",")[0]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data):
    def poison(trainer, event):
        if event == "step" and trainer.state.global_step == 8:
            with torch.no_grad():
                trainer.state.model.get_classifier().weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"nan.*epoch 2.*last good checkpoint"):
        train(config(tmp_path / "r"), splits=tiny_data, callbacks=[poison])
    state = load_checkpoint(tmp_path / "r")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values()
               if t.is_floating_point())


# ------------------------------------------------------------------ checkpoint errors
def test_corrupt_checkpoint_is_clear_error(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    train(config(out, tiny_recipe(epochs=1)), splits=tiny_data)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert main(["train", "--model", TINY, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "Traceback" not in err and err.count("\n") == 1
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert main(["eval", str(out / "checkpoint.pt")]) == 2
    assert "corrupt" in capsys.readouterr().err
    torch.save({"weights": 1}, out / "foreign.pt")
    with pytest.raises(IGCError, match="not an igc checkpoint"):
        load_checkpoint(out / "foreign.pt")


def test_checkpoint_of_another_model_is_clear_error(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    train(config(out, tiny_recipe(epochs=1)), splits=tiny_data)
    assert main(["train", "--model", TINY_OTHER, "--out", str(out), "--resume"]) == 2
    assert f"of model {TINY!r}, not {TINY_OTHER!r}" in capsys.readouterr().err
    state = load_checkpoint(out)
    state["model"] = TINY_OTHER
    del state["path"]
    save_checkpoint(state, out / "relabelled.pt")
    assert main(["eval", str(out / "relabelled.pt")]) == 2
    assert "does not fit model" in capsys.readouterr().err


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_checkpoint({"x": torch.ones(2)}, tmp_path / "c.pt")
    save_checkpoint({"x": torch.zeros(2)}, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert torch.load(tmp_path / "c.pt", weights_only=True)["x"].sum() == 0


# ------------------------------------------------------------------ run directory rules
def test_existing_run_needs_force_and_resume_needs_checkpoint(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    args = ["train", "--model", TINY, "--out", str(out), "--epochs", "1", "--quiet",
            "--batch-size", "16", "--set", "threads=1"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert len(read_jsonl(out / "metrics.jsonl")) == 1  # overwritten, not appended
    capsys.readouterr()
    assert main(["train", "--model", TINY, "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


# ------------------------------------------------------------------ outputs
def test_metrics_jsonl_and_summary(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    assert main(["train", "--model", TINY, "--out", str(out), "--epochs", "3", "--quiet",
                 "--set", "eval_every=2", "--set", "threads=1", "--batch-size", "32"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    for part in (TINY, "fashion-mnist", "parameters", "multiply-adds", "top-1", "top-5",
                 "images/s"):
        assert part in line
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "test_loss", "top1", "top5", "lr", "seconds",
                "images_per_s"):
        assert key in records[0]
    assert records[0]["top1"] is None and records[1]["top1"] is not None  # every 2 + last
    assert records[2]["top1"] is not None and 0 <= records[2]["top1"] <= records[2]["top5"]
    assert records[1]["lr"] > records[2]["lr"]  # cosine after the warm-up epoch
    assert all(r["images_per_s"] > 0 for r in records)
    assert records[0]["images"] == 96  # 3 batches of 32
    summary = json.loads((out / "summary.json").read_text())
    assert summary["top1"] == records[-1]["top1"] and summary["params"] > 0
    saved = load_recipe(out / "recipe.toml")
    assert saved.epochs == 3 and saved.batch_size == 32 and saved.eval_every == 2
    run = json.loads((out / "run.json").read_text())  # the code's commit (tests run from git)
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:
        assert run["commit"].split("+")[0] == head.stdout.strip()


def test_eval_json_matches_training(tmp_path, tiny_data, capsys):
    out = tmp_path / "r"
    result = train(config(out, tiny_recipe(epochs=1)), splits=tiny_data)
    assert main(["eval", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == TINY and report["images"] == 40
    assert report["top1"] == pytest.approx(result.top1)
    assert list(report["per_class"]) == tiny_data.classes
    assert statistics.fmean(report["per_class"].values()) == pytest.approx(report["top1"])
    assert main(["eval", str(out / "checkpoint.pt")]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "class9" in text


@pytest.mark.slow
def test_plot_writes_png(tmp_path, tiny_data, capsys):
    pytest.importorskip("matplotlib")
    for name in ("a", "b"):
        train(config(tmp_path / name, tiny_recipe(epochs=2)), splits=tiny_data)
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                 str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "missing")]) == 2


def test_summarize_mean_std(tmp_path, capsys):
    for seed, top1 in enumerate([90.0, 92.0, 94.0]):
        d = tmp_path / "runs" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps(
            {"model": "m", "data": "fashion-mnist", "recipe": "r", "top1": top1,
             "top5": 99.0, "params": 1000, "macs": 2000, "epochs": 3}))
    assert main(["summarize", str(tmp_path / "runs"), "--json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    assert group["runs"] == 3 and group["top1_mean"] == pytest.approx(92.0)
    assert group["top1_std"] == pytest.approx(2.0)
    assert main(["summarize", str(tmp_path / "runs")]) == 0
    assert "92.00 ± 2.00" in capsys.readouterr().out


def test_seeds_runs_subdirs_and_summarizes(tmp_path, tiny_data, capsys):
    out = tmp_path / "s"
    assert main(["train", "--model", TINY, "--out", str(out), "--epochs", "1", "--seeds", "2",
                 "--seed", "5", "--quiet", "--batch-size", "16", "--set", "threads=1"]) == 0
    text = capsys.readouterr().out
    assert (out / "seed5" / "summary.json").is_file()
    assert (out / "seed6" / "summary.json").is_file()
    assert "±" in text
    w5, w6 = weights(out / "seed5"), weights(out / "seed6")
    assert any(not torch.equal(w5[k], w6[k]) for k in w5)


# ------------------------------------------------------------------ CLI bad input
@pytest.mark.parametrize("args, message", [
    (["--model", "igcv2_fmnits"], "did you mean igcv2_fmnist"),
    (["--data", "fashion-mnits"], "did you mean fashion-mnist"),
    (["--recipe", "cifra"], "did you mean cifar"),
    (["--recipe", "nope/missing.toml"], "does not exist"),
    (["--batch-size", "0"], "batch size must be at least 1"),
    (["--lr", "fast"], "expected a number"),
    (["--lr", "-1"], "lr must be a positive"),
    (["--set", "lr=abc"], "'lr' must be a number"),
    (["--set", "learning_rate=0.1"], "unknown recipe key"),
    (["--set", "schedule=cosin"], "did you mean cosine"),
    (["--device", "tpu"], "unknown device"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, tiny_data, capsys, args, message):
    code = main(["train", "--out", str(tmp_path / "r"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("igc: error:") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_unwritable_out_and_image_size(tmp_path, tiny_data, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--model", TINY, "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["train", "--model", FIXED, "--out", str(tmp_path / "f"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot take 8x8 images" in err and err.count("\n") == 1


def test_cli_data_dir_wrong_layout(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--model", TINY, "--data", "imagefolder", "--data-dir",
                 str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "train/<class>" in capsys.readouterr().err
    (tmp_path / "empty" / "train-images-idx3-ubyte.gz").write_bytes(b"not the images")
    assert main(["train", "--model", TINY, "--data", "fashion-mnist", "--data-dir",
                 str(tmp_path / "empty"), "--no-download", "--out", str(tmp_path / "r2"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and err.count("\n") == 1


def test_model_and_recipe_defaults_resolve(tmp_path, monkeypatch):
    from igc.cli import build_parser
    from igc.cli.train import resolve
    from igc.train.resolve import resolve_run

    monkeypatch.chdir(tmp_path)  # the default folder is relative to the working directory
    c = resolve(build_parser().parse_args(["train"]))
    assert (c.model, c.data, c.recipe.name) == ("igcv2_c48_d11_fmnist", "fashion-mnist",
                                                "fashion-mnist-cpu")
    assert c.out == Path("runs/igcv2_c48_d11_fmnist-fashion-mnist")
    c = resolve(build_parser().parse_args(["train", "--model", TINY, "--data", "cifar10",
                                           "--lr", "0.2", "--batch-size", "128"]))
    assert c.recipe.name == "cifar" and c.recipe.scaled_lr() == pytest.approx(0.4)
    api = resolve_run(TINY, "cifar10", overrides=[("lr", 0.2), ("batch_size", 128)])
    assert api.recipe.to_dict() == c.recipe.to_dict() and api.out == c.out


def test_schedule_warmup_cosine_multistep():
    from torch.optim.lr_scheduler import LambdaLR

    from igc.train.optim import build_scheduler, param_groups

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    groups = param_groups(model, 1e-4, decay_bn_bias=False)
    assert [len(g["params"]) for g in groups] == [2, 4]
    assert groups[1]["weight_decay"] == 0.0
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    r = tiny_recipe(schedule="cosine", epochs=10, warmup_epochs=1.0, warmup_factor=0.1,
                    min_lr=0.0)
    s = build_scheduler(opt, r, 1.0, steps_per_epoch=10)
    assert isinstance(s, LambdaLR)
    lr_at = s.lr_lambdas[0]
    assert lr_at(0) == pytest.approx(0.1) and lr_at(5) == pytest.approx(0.55)
    assert lr_at(10) == pytest.approx(1.0) and lr_at(100) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(55) == pytest.approx(0.5)
    r = tiny_recipe(schedule="multistep", epochs=10, milestones=[3, 6], gamma=0.1,
                    warmup_epochs=0.0)
    s = build_scheduler(opt, r, 0.1, steps_per_epoch=4)
    assert [round(0.1 * s.lr_lambdas[0](e * 4), 6) for e in (0, 2, 3, 5, 6, 9)] == \
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    opt.step()
    s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert math.isclose(s.last_epoch, 1)
    # a scheduler rebuilt at step 13 (a resume) continues exactly where this one is
    for _ in range(12):
        opt.step()
        s.step()
    again = build_scheduler(torch.optim.SGD(model.parameters(), lr=5.0), r, 0.1, 4, 13)
    assert again.get_last_lr() == s.get_last_lr() and again.last_epoch == 13


def test_thread_governor_drops_to_one_thread_while_machine_busy(monkeypatch):
    import igc.train.threads as th

    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(th, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(th, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(th.time, "monotonic", lambda: clock["t"])
    before = torch.get_num_threads()
    try:
        gov = th.ThreadGovernor(2, auto=True, switching=True, interval=3.0)
        assert gov.enabled and gov.current == 2 and torch.get_num_threads() == 2

        def advance(seconds: float, ours: float, others: float) -> None:
            clock["t"] += seconds
            clock["own"] += ours * seconds
            clock["busy"] += (ours + others) * seconds
            gov.tick()

        advance(3.5, 2.0, 0.0)
        assert gov.current == 2
        advance(3.5, 1.0, 1.0)  # another process takes a core: one thread
        assert gov.current == 1 and torch.get_num_threads() == 1
        advance(3.5, 1.0, 0.4)  # in the hysteresis band: stay
        assert gov.current == 1
        advance(3.5, 1.0, 0.0)  # idle again: all cores
        assert gov.current == 2 and gov.switches == 2
        assert sum(gov.steps.values()) == 4 and "50% of steps with 1" in gov.describe()
        fixed = th.ThreadGovernor(2, auto=True)
        advance(3.5, 1.0, 1.0)
        fixed.tick()
        assert fixed.current == 2 and not fixed.enabled
    finally:
        torch.set_num_threads(before)


def test_thread_governor_starts_with_one_thread_beside_a_busy_process(monkeypatch):
    import igc.train.threads as th

    monkeypatch.setattr(th, "free_cores", lambda total, sample=0.25: (1, 1.0))
    before = torch.get_num_threads()
    try:
        gov = th.ThreadGovernor(2, auto=True)
        assert gov.current == 1 and torch.get_num_threads() == 1 and not gov.enabled
        assert gov.describe() == "1 thread (1 of 2 cores free: other processes used 1.0)"
        for _ in range(3):
            gov.tick()
        assert gov.current == 1 and gov.steps == {1: 3}
        assert th.ThreadGovernor(2).describe() == "2 threads (fixed)"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("total, others_use, ours, free", [
    (2, 0.0, 2.0, 2),  # only this process runs: every core is free
    (2, 1.0, 1.0, 1),  # another process holds a core
    (4, 1.2, 0.5, 3),  # 1.2 cores used elsewhere count as one
    (4, 1.7, 0.0, 2),
    (2, 3.0, 1.0, 1),  # more than the machine has: still one core
])
def test_free_cores_counts_what_other_processes_use(monkeypatch, total, others_use, ours,
                                                     free):
    """Machine time minus this process's own, over the sample's wall time, rounded to
    cores (fake /proc/stat and clock)."""
    import igc.train.threads as th

    clock = {"t": 100.0, "busy": 5000.0, "own": 3.0}

    def sleep(seconds: float) -> None:
        clock["t"] += seconds
        clock["own"] += ours * seconds
        clock["busy"] += (ours + others_use) * seconds

    monkeypatch.setattr(th, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(th, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(th.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(th.time, "sleep", sleep)
    assert th.free_cores(total, sample=0.5) == (free, pytest.approx(others_use))
    monkeypatch.setattr(th, "_busy_seconds", lambda: None)  # /proc/stat unreadable
    assert th.free_cores(total, sample=0.5) == (total, None)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat")
def test_busy_seconds_reads_the_machine():
    """The real /proc/stat: busy time is positive and grows while this process works."""
    from igc.train.threads import _busy_seconds

    before = _busy_seconds()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    after = _busy_seconds()
    assert before is not None and after is not None and 0 < before < after


@pytest.mark.parametrize("value", ["0", "-1", "100000", "two"])
def test_threads_flag_out_of_range_is_one_line(value, capsys):
    from igc.cli import main

    assert main(["train", "--threads", value, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--threads" in err[0] or "integer" in err[0])
