"""The network of a run, built from the registry only after it is known to fit: its
parameters, largest activation and training memory are measured on the meta device first,
and a network over the limits is one-line IGCError, not an exhausted machine."""

from __future__ import annotations

import torch
from torch import nn

from igc.analysis.probe import measure
from igc.data import DatasetSplits
from igc.errors import IGCError
from igc.models.registry import create_model

#: The most parameters a network may have before it is built (4 GB of float32 weights).
MAX_PARAMS = 10**9
#: The most elements of one activation tensor for one image (1 GiB of float32).
MAX_ACTIVATION = 2**28


def build_model(name: str, splits: DatasetSplits, model_args: dict, batch: int = 1,
                memory: int | None = None, size: int | None = None) -> nn.Module:
    """The registry's ``name`` for the data set's classes and channels. Measured on the
    meta device first (nothing allocated), it is refused with IGCError when it has more
    than :data:`MAX_PARAMS` parameters, an activation over :data:`MAX_ACTIVATION` values
    per image, or (given ``memory`` bytes) activations for a training ``batch`` that do
    not fit in that memory; ``size``: the side of the images training feeds it (after the
    augmentations; default the data set's)."""
    def build() -> nn.Module:
        return create_model(name, num_classes=splits.num_classes,
                            in_chans=splits.in_channels, **model_args)

    try:
        with torch.device("meta"):
            meta = build()
    except IGCError:
        raise
    except Exception:  # a builder that cannot run on the meta device: no estimate
        return build()
    params = sum(p.numel() for p in meta.parameters())
    try:  # shapes that do not fit are reported by probe()
        acts = measure(meta, splits.in_channels, size or splits.image_size)
        largest, total = acts.largest_leaf, acts.leaves
    except IGCError:
        largest, total = 0, 0
    options = f"{name!r} with {splits.num_classes} classes and options {model_args}"
    if params > MAX_PARAMS:
        raise IGCError(f"model {options} has {params:,} parameters, over the limit of "
                       f"{MAX_PARAMS:,}; check --set model_args and the data set")
    if largest is not None and largest > MAX_ACTIVATION:
        raise IGCError(f"model {options} makes an activation of {largest:,} values per "
                       f"{size or splits.image_size}x{size or splits.image_size} image, "
                       "over the limit of "
                       f"{MAX_ACTIVATION:,}; check --set model_args and the image size")
    need = 4 * total * batch
    if memory is not None and need > memory:
        raise IGCError(f"training {name!r} at batch {batch} keeps about {need / 2**30:,.1f} "
                       f"GiB of activations, more than the {memory / 2**30:,.1f} GiB of "
                       "memory here; lower --batch-size or the model's width")
    return build()


__all__ = ["MAX_ACTIVATION", "MAX_PARAMS", "build_model"]
