"""SGD with (Nesterov) momentum, parameter groups for weight decay, and the learning-rate
schedules of the recipes (per step: warm-up, multi-step, cosine, exponential, constant)."""

from __future__ import annotations

import math

import torch
from torch import nn

from igc.train.recipe import Recipe


def param_groups(model: nn.Module, weight_decay: float,
                 decay_bn_bias: bool = True) -> list[dict]:
    """One group with ``weight_decay``; with ``decay_bn_bias=False`` a second group without
    decay for every 1-d parameter (BatchNorm weights and biases, all biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_bn_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    """SGD as the recipe says (``lr`` already scaled for the batch)."""
    groups = param_groups(model, recipe.weight_decay, recipe.decay_bn_bias)
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum,
                           nesterov=recipe.nesterov and recipe.momentum > 0)


class Schedule:
    """The learning rate at every optimizer step, a pure function of the step.

    ``steps_per_epoch`` converts steps to (fractional) epochs. Warm-up rises linearly from
    ``warmup_factor * lr`` to ``lr`` over ``warmup_epochs``; after it, ``multistep`` multiplies
    by ``gamma`` at each milestone epoch, ``exponential`` by ``gamma`` at every epoch,
    ``cosine`` anneals to ``min_lr`` at the end of the last epoch (per step), ``constant``
    keeps ``lr``. Its state is just the step, so a checkpoint restores it exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: Recipe, lr: float,
                 steps_per_epoch: int) -> None:
        self.optimizer, self.lr = optimizer, lr
        self.kind, self.milestones, self.gamma = recipe.schedule, list(recipe.milestones), \
            recipe.gamma
        self.epochs, self.min_lr = recipe.epochs, recipe.min_lr
        self.warmup, self.warmup_factor = recipe.warmup_epochs, recipe.warmup_factor
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.step_count = 0
        self.apply()

    def lr_at(self, step: int) -> float:
        epoch = step / self.steps_per_epoch  # fractional epochs done
        whole = step // self.steps_per_epoch  # index of the current epoch
        if self.kind == "multistep":
            lr = self.lr * self.gamma ** sum(1 for m in self.milestones if whole >= m)
        elif self.kind == "exponential":
            lr = self.lr * self.gamma ** whole
        elif self.kind == "cosine":
            span = max(self.epochs - self.warmup, 1e-12)
            t = min(max(epoch - self.warmup, 0.0) / span, 1.0)
            lr = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        else:
            lr = self.lr
        if self.warmup > 0 and epoch < self.warmup:
            f = self.warmup_factor + (1 - self.warmup_factor) * epoch / self.warmup
            lr = lr * f
        return lr

    @property
    def current(self) -> float:
        return self.lr_at(self.step_count)

    def apply(self) -> None:
        lr = self.current
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimizer step and set the next step's learning rate."""
        self.step_count += 1
        self.apply()

    def state_dict(self) -> dict:
        return {"step": self.step_count, "lr": self.lr, "kind": self.kind}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.apply()
