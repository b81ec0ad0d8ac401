"""Input sizes in deployment: what a model was built for (:func:`model_input`); the probe
that checks a size and batch before any real work is :mod:`igc.analysis.probe`, whose
names are re-exported here."""

from __future__ import annotations

from torch import nn

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


__all__ = ["MAX_DEPLOY_BATCH", "MAX_INPUT_SIZE", "MEMORY_FRACTION", "check_input",
           "device_memory", "model_device", "model_input"]
