"""Input sizes in deployment: what a model was built for (:func:`model_input`); the probe
that checks a size and batch before any real work is :mod:`igc.analysis.probe`, whose
names are re-exported here."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from igc.analysis.probe import (
    MAX_DEPLOY_BATCH,
    MAX_INPUT_SIZE,
    MEMORY_FRACTION,
    check_input,
    device_memory,
    model_device,
)


def model_input(model: nn.Module) -> tuple[int, int] | None:
    """``(in_chans, size)`` a model was built for: timm's ``pretrained_cfg`` /
    ``default_cfg`` ``input_size`` (every zoo network has one); looks inside wrappers
    that hold the network as ``.model``. ``None`` when nothing says."""
    for m in (model, getattr(model, "model", None)):
        if m is None:
            continue
        for attr in ("pretrained_cfg", "default_cfg"):
            cfg = getattr(m, attr, None)
            size = cfg.get("input_size") if isinstance(cfg, dict) else None
            if isinstance(size, (tuple, list)) and len(size) == 3 and size[1] == size[2]:
                return int(size[0]), int(size[1])
    return None


def run_hooked(net: nn.Module, example: torch.Tensor, hooks: Iterable[RemovableHandle]
               ) -> None:
    """Run ``net`` once on ``example`` without gradients while ``hooks`` (registered on
    its modules) record what they need; the hooks are removed afterwards, also on error."""
    handles = list(hooks)
    try:
        with torch.inference_mode():
            net(example)
    finally:
        for h in handles:
            h.remove()


__all__ = ["MAX_DEPLOY_BATCH", "MAX_INPUT_SIZE", "MEMORY_FRACTION", "check_input",
           "device_memory", "model_device", "model_input", "run_hooked"]
