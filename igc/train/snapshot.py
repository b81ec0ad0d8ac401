"""What a checkpoint holds of a running trainer, and how a resumed trainer gets it back.

:func:`capture` is the checkpoint's content (the file format and its validation live in
:mod:`igc.files.checkpoint`); :func:`restore` puts a checked checkpoint into a trainer
that :mod:`igc.train.builders` has just built for it. Together they make a resumed run
continue exactly where the saved one stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from igc.errors import IGCError
from igc.files.checkpoint import TrainingRecord
from igc.formatting import first_line
from igc.train.builders import check_optimizer_state, position_samples
from igc.train.checkpoint import load_model_weights, rng_state, set_rng_state

if TYPE_CHECKING:
    from igc.train.trainer import Trainer


def capture(trainer: Trainer) -> dict[str, Any]:
    """Everything a checkpoint holds of ``trainer`` (every rank must call it: the RNG
    states are gathered)."""
    rngs = [rng_state()]
    if trainer.dist.enabled:
        import torch.distributed as dist

        gathered: list = [None] * trainer.dist.world_size
        dist.all_gather_object(gathered, rngs[0])
        rngs = gathered
    s, r = trainer.splits, trainer.recipe
    return TrainingRecord(
        model=trainer.config.model, model_args=dict(r.model_args), data=s.name,
        classes=list(s.classes), num_classes=s.num_classes,
        in_chans=s.in_channels, image_size=s.image_size, mean=list(s.mean),
        std=list(s.std), params=trainer.params, macs=trainer.macs,
        state_dict=trainer.model.state_dict(),
        ema_state_dict=trainer.ema.state_dict() if trainer.ema is not None else None,
        optimizer=trainer.optimizer.state_dict(),
        schedule=trainer.scheduler.state_dict(),
        scaler=trainer.scaler.state_dict() if trainer.scaler.is_enabled() else None,
        rng=rngs, epoch=trainer.epoch, step_in_epoch=trainer.step_in_epoch,
        samples_in_epoch=trainer.step_in_epoch * r.batch_size,
        global_step=trainer.global_step, partial=dict(trainer.partial),
        train_seconds=trainer.train_seconds, images_seen=trainer.images_seen,
        sessions=trainer.all_sessions(),
        loader={"seed": r.seed, "epoch": trainer.epoch,
                "world_size": trainer.dist.world_size, "batch_size": r.batch_size},
        recipe=r.to_dict(), last_record=trainer.last_record,
        pending_eval=trainer.pending_eval, complete=trainer.epoch >= r.epochs,
        torch=str(torch.__version__),
    ).to_table()


def restore(trainer: Trainer, state: dict) -> None:
    """Put ``state`` (a checked, resumable checkpoint) into a trainer just built for it:
    weights, optimizer, scaler, weight average, position, running sums, RNG states."""
    where = state["path"]
    load_model_weights(trainer.model, state, trainer.config.model)
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise IGCError(f"the optimizer state in {where} does not fit "
                       f"({first_line(exc, 100)}); the checkpoint belongs to another "
                       "configuration") from None
    check_optimizer_state(trainer.optimizer, where)
    if state.get("scaler") and trainer.scaler.is_enabled():
        try:
            trainer.scaler.load_state_dict(state["scaler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IGCError(f"the gradient-scaler state in {where} is malformed "
                           f"({first_line(exc, 80)})") from None
    if trainer.ema is not None and state.get("ema_state_dict"):
        try:
            trainer.ema.load_state_dict(state["ema_state_dict"])
        except RuntimeError as exc:
            raise IGCError(f"the weight average in {where} does not fit the model "
                           f"({first_line(exc, 100)})") from None
    trainer.epoch = int(state["epoch"])
    trainer.step_in_epoch = position_samples(state, trainer.recipe) // trainer.recipe.batch_size
    trainer.global_step = int(state.get("global_step", 0))
    partial = state.get("partial") or {}
    trainer.partial = {"loss": float(partial.get("loss", 0.0)),
                    "correct": int(partial.get("correct", 0)),
                    "count": int(partial.get("count", 0)),
                    "seconds": float(partial.get("seconds", 0.0))}
    trainer.train_seconds = float(state.get("train_seconds", 0.0))
    trainer.images_seen = int(state.get("images_seen", 0))
    trainer.last_record = state.get("last_record")
    trainer.pending_eval = bool(state.get("pending_eval", False))
    rng = state["rng"]
    set_rng_state(rng[trainer.dist.rank] if trainer.dist.rank < len(rng) else rng[0], where)


__all__ = ["capture", "restore"]
