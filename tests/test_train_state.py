"""TrainState: its state dict round-trips, the checkpoint keeps the on-disk layout written
before it existed (format 1), and checkpoints in the older layouts still resume exactly."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.errors import IGCError
from igc.files.checkpoint import check_checkpoint, check_resumable
from igc.train.checkpoint import load_checkpoint, save_checkpoint
from igc.train.recipe import load_recipe, override
from igc.train.state import TrainState, position_samples
from igc.train.trainer import Interrupted, RunConfig, Trainer, train

TINY = "test_tiny_igcv2"

pytestmark = pytest.mark.usefixtures("tiny_models", "one_thread")

#: The keys of a checkpoint as igc wrote them before TrainState (read from a run of
#: 2026-12-04: ``torch.load(..., weights_only=True).keys()``), in their order.
V1_KEYS = ["format", "version", "model", "model_args", "num_classes", "in_chans", "data",
           "image_size", "classes", "mean", "std", "card", "state_dict", "recipe", "epoch",
           "params", "macs", "ema_state_dict", "optimizer", "schedule", "scaler", "rng",
           "step_in_epoch", "samples_in_epoch", "global_step", "partial", "train_seconds",
           "sessions", "images_seen", "loader", "last_record", "pending_eval", "complete",
           "torch"]
#: The keys added since the first checkpoints (2026-11-23): the position in images and
#: the pending evaluation (11-29), the sessions (12-04).
LATER_KEYS = {"samples_in_epoch", "pending_eval", "sessions"}


def tiny_recipe(**changes):
    settings_ = {"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "lr": 0.05,
                 "schedule": "cosine", "warmup_epochs": 0.5, "log_every": 1,
                 "eval_every": 1, "threads": 1, "model": TINY, "ema": True,
                 "train_augment": ["pad_crop:1", "hflip", "normalize"], **changes}
    return override(load_recipe("fashion-mnist-cpu"), list(settings_.items()))


def config(out: Path, **kw) -> RunConfig:
    return RunConfig(model=TINY, data="fashion-mnist", recipe=tiny_recipe(), out=out,
                     quiet=True, device="cpu", **kw)


def stop_at(step: int):
    def callback(trainer, event):
        if event == "step" and trainer.state.global_step == step:
            trainer.stop.request(signal.SIGINT)
    return callback


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("layout", ["v1", "before-12-04", "before-11-29"])
def test_checkpoint_in_an_older_layout_resumes_bitwise(tmp_path, tiny_data, layout):
    """A checkpoint stopped mid-epoch, rewritten key by key in an older layout (the v1
    keys as written before TrainState; without the sessions; also without the position
    in images and the pending evaluation), resumes to bitwise the weights and moving
    average of a run that never stopped; the checkpoint written now has the v1 keys."""
    straight = tmp_path / "a"
    train(config(straight), splits=tiny_data)
    with pytest.raises(Interrupted):
        train(config(tmp_path / "b"), splits=tiny_data, callbacks=[stop_at(3)])
    written = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert list(written) == V1_KEYS  # the layout did not change
    dropped = {"v1": set(), "before-12-04": {"sessions"}, "before-11-29": LATER_KEYS}[layout]
    old = {key: written[key] for key in V1_KEYS if key not in dropped}
    assert old["step_in_epoch"] == 3 and old["epoch"] == 0
    (tmp_path / "b" / "checkpoint.pt").unlink()
    save_checkpoint({k: v for k, v in old.items() if k not in ("format", "version")},
                    tmp_path / "b" / "checkpoint.pt")
    assert list(torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)) == \
        [k for k in V1_KEYS if k not in dropped]
    train(config(tmp_path / "b", resume=True), splits=tiny_data)
    a, b = load_checkpoint(straight), load_checkpoint(tmp_path / "b")
    assert_same_tensors(a["state_dict"], b["state_dict"])
    assert_same_tensors(a["ema_state_dict"], b["ema_state_dict"])
    assert b["epoch"] == 2 and b["complete"]


def _built(out: Path, tiny_data) -> Trainer:
    trainer = Trainer(config(out), splits=tiny_data)
    trainer.setup()
    return trainer


def test_state_dict_round_trips(tmp_path, tiny_data):
    """``load_state_dict(state_dict())`` into a freshly built state gives back every
    tensor, the optimizer, the position and the running sums, for any position; the
    checkpoint table is the state dict plus the run's metadata."""
    source, target = _built(tmp_path / "s", tiny_data), _built(tmp_path / "t", tiny_data)
    try:
        x = torch.randn(4, 1, 8, 8)
        source.state.model(x).sum().backward()
        source.state.optimizer.step()  # momentum buffers to carry over
        source.state.ema.update_parameters(source.state.model)

        @settings(max_examples=15, deadline=None, derandomize=True)
        @given(epoch=st.integers(0, 1), step=st.integers(0, 5), global_step=st.integers(0, 99),
               seen=st.integers(0, 10**6), loss=st.floats(0, 1e3), record=st.booleans())
        def check(epoch, step, global_step, seen, loss, record):
            s = source.state
            s.epoch, s.step_in_epoch, s.global_step, s.images_seen = epoch, step, global_step, seen
            s.partial = {"loss": loss, "correct": step, "count": 16 * step, "seconds": 0.5}
            s.last_record = {"epoch": epoch, "train_loss": loss} if record else None
            s.pending_eval = record
            torch.manual_seed(global_step)
            table = source.checkpoint()
            assert set(table) - set(s.state_dict()) == {
                "model", "model_args", "num_classes", "in_chans", "data", "image_size",
                "classes", "mean", "std", "card", "recipe", "params", "macs", "sessions",
                "loader", "complete", "torch"}
            want = torch.rand(3)
            table = check_resumable(check_checkpoint({"format": "igc-checkpoint", **table},
                                                     tmp_path / "x.pt"))
            torch.manual_seed(12345)
            target.state.load_state_dict(table)
            t = target.state
            assert (t.epoch, t.step_in_epoch, t.global_step, t.images_seen) == \
                (epoch, step, global_step, seen)
            assert t.partial == s.partial and t.last_record == s.last_record
            assert t.pending_eval == record
            assert_same_tensors(t.model.state_dict(), s.model.state_dict())
            assert_same_tensors(t.ema.state_dict(), s.ema.state_dict())
            got, sent = t.optimizer.state_dict(), s.optimizer.state_dict()
            assert got["param_groups"] == sent["param_groups"]
            for key, buffers in sent["state"].items():
                assert_same_tensors(got["state"][key], buffers)
            assert torch.equal(torch.rand(3), want)  # the RNG state came back

        check()
    finally:
        source.close()
        target.close()


@given(samples=st.integers(0, 10**6), steps=st.integers(0, 10**4),
       batch=st.integers(1, 512))
def test_position_counts_images_or_older_steps(samples, steps, batch):
    """The position in images: ``samples_in_epoch`` when the checkpoint has it, else its
    ``step_in_epoch`` batches of the checkpoint's batch size."""
    assert position_samples({"samples_in_epoch": samples, "step_in_epoch": steps},
                            batch) == samples
    assert position_samples({"step_in_epoch": steps}, batch) == steps * batch
    assert position_samples({}, batch) == 0


def test_optimizer_state_of_another_shape_is_one_line(tmp_path, tiny_data):
    """A momentum buffer whose shape is not its parameter's is refused when loaded,
    naming the buffer and both shapes, before any step runs."""
    trainer = _built(tmp_path / "r", tiny_data)
    try:
        s = trainer.state
        s.model(torch.randn(2, 1, 8, 8)).sum().backward()
        s.optimizer.step()
        table = trainer.checkpoint()
        first = next(iter(table["optimizer"]["state"].values()))
        first["momentum_buffer"] = torch.zeros(first["momentum_buffer"].numel() + 1)
        table = check_resumable(check_checkpoint({"format": "igc-checkpoint", **table},
                                                 tmp_path / "x.pt"))
        fresh = TrainState(s.model, s.optimizer, s.scaler, s.ema, s.batch_size)
        with pytest.raises(IGCError, match="momentum_buffer of shape"):
            fresh.load_state_dict(table)
    finally:
        trainer.close()
