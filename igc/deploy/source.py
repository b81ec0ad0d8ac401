"""The network to export or benchmark: a registered model (random weights) or an igc
checkpoint, with what is known about its input and data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from igc.checks import check_int
from igc.deploy.inputs import model_device
from igc.errors import IGCError
from igc.models.registry import create_model, list_models, model_entry
from igc.train.checkpoint import model_from_checkpoint


@dataclass
class ModelSource:
    """A network and what is known about its input."""

    model: nn.Module
    name: str  # the registered model name
    input_size: int
    in_chans: int
    num_classes: int
    checkpoint: str | None = None  # path, when weights came from a checkpoint
    data: str | None = None  # the data set it was trained on / registered for
    recipe: dict | None = None
    model_args: dict | None = None  # the builder options a checkpoint records
    classes: list | None = None  # the class names a checkpoint records

    @property
    def weights(self) -> str:
        """The checkpoint path, or ``"random"``."""
        return self.checkpoint or "random"


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".pt", ".pth", ".ckpt", ".pt2"))


def load_source(source: str) -> ModelSource:
    """A registered model name (random weights) or a checkpoint file / run directory."""
    if not isinstance(source, str) or not source.strip():
        raise IGCError("give a registered model name or a checkpoint path")
    path = Path(source)
    if path.exists() or (_looks_like_path(source) and source not in list_models()):
        loaded = model_from_checkpoint(path)
        entry = model_entry(loaded.name)
        return ModelSource(loaded.model, loaded.name, int(loaded.image_size or entry.input_size),
                           loaded.in_chans, loaded.num_classes, loaded.path or str(path),
                           loaded.data or entry.dataset, loaded.recipe,
                           dict(loaded.state.get("model_args") or {}),
                           loaded.state.get("classes"))
    entry = model_entry(source)  # IGCError with suggestions for unknown names
    model = create_model(source)
    return ModelSource(model.eval(), source, entry.input_size, entry.in_chans, entry.num_classes,
                       None, entry.dataset, None)


def calibrate_batchnorm(model: nn.Module, in_chans: int, size: int, images: int = 32,
                        batch: int = 8, seed: int = 0) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``images`` random normal
    images (cumulative averages), in place, and return the model in eval mode.

    A freshly initialised network has mean 0 and variance 1 in every BatchNorm, so
    folding is trivial and its outputs are tiny: an export check on it means little.
    After this its activations are normalised and every fold does real work.
    """
    check_int(images, "BN calibration images", 2, 1 << 16)
    check_int(batch, "BN calibration batch", 2, 1 << 16)
    chunks = [batch] * (images // batch) + ([images % batch] if images % batch else [])
    if chunks[-1] == 1:  # a batch of one has no variance
        chunks[-2:] = [chunks[-2] + 1]
    device = model_device(model)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats and m.running_mean is not None]
    saved = [(m, m.momentum) for m in norms]
    g = torch.Generator().manual_seed(seed)
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
        model.train()
        with torch.no_grad():
            for n in chunks:
                model(torch.randn(n, in_chans, size, size, generator=g).to(device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return model


__all__ = ["ModelSource", "calibrate_batchnorm", "load_source"]
