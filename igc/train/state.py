"""The state of a training run: what changes from step to step, in one object.

:class:`TrainState` holds the model, optimizer, learning-rate schedule, gradient scaler,
moving average of the weights, the position in the run (epoch, step, images) and the running
sums of a half-done epoch. Its :meth:`~TrainState.state_dict` /
:meth:`~TrainState.load_state_dict` work as PyTorch's own objects' do; the checkpoint is
that state dict plus the run's metadata (:func:`igc.train.snapshot.capture`), one flat
table whose keys (``state_dict``, ``optimizer``, ``epoch``, ...) are those of
:class:`igc.files.checkpoint.TrainingRecord` (format version 1, unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from igc.errors import IGCError
from igc.formatting import first_line
from igc.train.checkpoint import load_model_weights, rng_state, set_rng_state
from igc.train.distributed import DistInfo

#: The running sums of a half-done epoch (all zero at an epoch boundary).
EMPTY_PARTIAL = {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}


def position_samples(state: dict, batch_size: int) -> int:
    """Images of the current epoch a checkpoint has trained on (all processes);
    ``batch_size``: the checkpoint's, for files older than ``samples_in_epoch``."""
    if "samples_in_epoch" in state:
        return int(state["samples_in_epoch"])
    return int(state.get("step_in_epoch", 0)) * batch_size  # older checkpoints


def check_optimizer_state(optimizer: torch.optim.Optimizer, where: str) -> None:
    """IGCError unless every restored optimizer buffer has its parameter's shape (PyTorch
    does not check, and a wrong one fails only at the next step)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != p.shape:
                    raise IGCError(f"the optimizer state in {where} has {name} of shape "
                                   f"{tuple(value.shape)} for a parameter of shape "
                                   f"{tuple(p.shape)}; it belongs to another configuration")


@dataclass(eq=False)
class TrainState:
    """Everything of a run that training changes.

    ``model`` (unwrapped: not DDP, not compiled), ``optimizer``, ``scheduler`` (a
    ``LambdaLR``; None until :func:`igc.train.builders.build_state` positions it),
    ``scaler``, ``ema`` (an ``AveragedModel`` or None); the position: ``epoch`` (epochs
    done), ``step_in_epoch`` (optimizer steps of this process in the current epoch, each of
    ``batch_size`` images over all processes), ``global_step``; ``partial``: the running
    loss/correct/count/seconds of a half-done epoch; ``train_seconds`` and ``images_seen``
    over the run; ``last_record`` (the last epoch's metrics line) and ``pending_eval``
    (its due evaluation has not run yet). ``dist``: where this process runs (the RNG
    states of every process are gathered into the state dict).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    batch_size: int
    dist: DistInfo = field(default_factory=DistInfo)
    scheduler: LambdaLR | None = None
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    partial: dict[str, Any] = field(default_factory=lambda: dict(EMPTY_PARTIAL))
    train_seconds: float = 0.0
    images_seen: int = 0
    last_record: dict | None = None
    pending_eval: bool = False

    def steps_done(self, steps_per_epoch: int) -> int:
        """Optimizer steps since the start of the run, at ``steps_per_epoch`` (the
        schedule's position)."""
        return self.epoch * steps_per_epoch + self.step_in_epoch

    def rng_states(self) -> list[dict[str, Any]]:
        """The RNG states of every process, rank by rank (every rank must call it)."""
        own = rng_state()
        if not self.dist.enabled:
            return [own]
        gathered: list = [None] * self.dist.world_size
        torch.distributed.all_gather_object(gathered, own)
        return gathered

    def state_dict(self) -> dict[str, Any]:
        """The state as the checkpoint's fields (tensors not copied; every rank must call
        it: the RNG states are gathered)."""
        assert self.scheduler is not None, "the schedule is built before training"
        return {
            "state_dict": self.model.state_dict(),
            "ema_state_dict": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": self.rng_states(), "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "samples_in_epoch": self.step_in_epoch * self.batch_size,
            "global_step": self.global_step, "partial": dict(self.partial),
            "train_seconds": self.train_seconds, "images_seen": self.images_seen,
            "last_record": self.last_record, "pending_eval": self.pending_eval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put ``state`` (a checked, resumable checkpoint: :func:`igc.train.checkpoint.
        check_resumable`) into this freshly built state: weights, optimizer, scaler, weight
        average, position, running sums, this process's RNG state. The schedule is not
        loaded: its lambdas do not pickle, and its state is only its position, so
        :func:`igc.train.builders.build_state` rebuilds it there. Fields that older
        checkpoints lack take their defaults (the position from ``step_in_epoch`` times
        :attr:`batch_size`)."""
        where = state.get("path", "the checkpoint")
        load_model_weights(self.model, state, str(state.get("model", "")))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            raise IGCError(f"the optimizer state in {where} does not fit "
                           f"({first_line(exc, 100)}); the checkpoint belongs to another "
                           "configuration") from None
        check_optimizer_state(self.optimizer, where)
        if state.get("scaler") and self.scaler.is_enabled():
            try:
                self.scaler.load_state_dict(state["scaler"])
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise IGCError(f"the gradient-scaler state in {where} is malformed "
                               f"({first_line(exc, 80)})") from None
        if self.ema is not None and state.get("ema_state_dict"):
            try:
                self.ema.load_state_dict(state["ema_state_dict"])
            except RuntimeError as exc:
                raise IGCError(f"the weight average in {where} does not fit the model "
                               f"({first_line(exc, 100)})") from None
        self.epoch = int(state["epoch"])
        self.step_in_epoch = position_samples(state, self.batch_size) // self.batch_size
        self.global_step = int(state.get("global_step", 0))
        partial = state.get("partial") or {}
        self.partial = {"loss": float(partial.get("loss", 0.0)),
                        "correct": int(partial.get("correct", 0)),
                        "count": int(partial.get("count", 0)),
                        "seconds": float(partial.get("seconds", 0.0))}
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.images_seen = int(state.get("images_seen", 0))
        self.last_record = state.get("last_record")
        self.pending_eval = bool(state.get("pending_eval", False))
        rng = state["rng"]
        rank = self.dist.rank
        set_rng_state(rng[rank] if rank < len(rng) else rng[0], where)


__all__ = ["EMPTY_PARTIAL", "TrainState", "check_optimizer_state", "position_samples"]
