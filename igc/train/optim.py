"""SGD with (Nesterov) momentum, parameter groups for weight decay, the learning-rate
schedules of the recipes (per step: warm-up, multi-step, cosine, exponential, constant) as a
``LambdaLR``, and the exponential moving average of the weights (``AveragedModel``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

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


def lr_factor(recipe: Recipe, lr: float, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate at optimizer step ``step`` as a multiple of the peak ``lr``: a
    pure function of the step, for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    ``steps_per_epoch`` converts steps to (fractional) epochs. Warm-up rises linearly from
    ``warmup_factor`` to 1 over ``warmup_epochs``; after it, ``multistep`` multiplies by
    ``gamma`` at each milestone epoch, ``exponential`` by ``gamma`` at every epoch,
    ``cosine`` anneals to ``min_lr`` at the end of the last epoch (per step), ``constant``
    keeps 1.
    """
    kind, milestones, gamma = recipe.schedule, list(recipe.milestones), recipe.gamma
    epochs, floor = recipe.epochs, recipe.min_lr / lr
    warmup, warmup_factor = recipe.warmup_epochs, recipe.warmup_factor
    per_epoch = max(1, steps_per_epoch)

    def factor(step: int) -> float:
        epoch = step / per_epoch  # fractional epochs done
        whole = step // per_epoch  # index of the current epoch
        if kind == "multistep":
            f = gamma ** sum(1 for m in milestones if whole >= m)
        elif kind == "exponential":
            f = gamma ** whole
        elif kind == "cosine":
            span = max(epochs - warmup, 1e-12)
            t = min(max(epoch - warmup, 0.0) / span, 1.0)
            f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        else:
            f = 1.0
        if warmup > 0 and epoch < warmup:
            f *= warmup_factor + (1 - warmup_factor) * epoch / warmup
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, lr: float,
                    steps_per_epoch: int, start_step: int = 0) -> LambdaLR:
    """A standard ``LambdaLR`` around :func:`lr_factor`, positioned at ``start_step``.

    The schedule's state is only its position, so a resumed run rebuilds it at the step it
    stopped at (also after a change of batch size at an epoch boundary, when the step is
    counted in the new batches): every group's base lr becomes ``lr``.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] = lr
    return LambdaLR(optimizer, lr_factor(recipe, lr, steps_per_epoch),
                    last_epoch=start_step - 1)


def current_lr(scheduler: LambdaLR) -> float:
    """The learning rate of the first group at the scheduler's position."""
    return float(scheduler.get_last_lr()[0])


def build_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (BatchNorm
    statistics), updated with :meth:`AveragedModel.update_parameters` after every step:
    ``ema = decay * ema + (1 - decay) * weights``."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
