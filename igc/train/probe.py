"""The input probe: one image of the data set through the built network, before training,
so that a network that cannot take the data set's images (or gives the wrong number of
classes) is a one-line IGCError; it also counts the network's parameters and multiply-adds."""

from __future__ import annotations

from torch import nn

from igc.analysis.count import count_macs
from igc.analysis.probe import measure
from igc.data import DatasetSplits
from igc.errors import IGCError


def probe(model: nn.Module, splits: DatasetSplits, name: str) -> tuple[int, int | None]:
    """Parameters and multiply-adds of ``model`` for the data set's images; IGCError when
    the model cannot take them (:func:`igc.analysis.probe.measure`)."""
    size, chans = splits.image_size, splits.in_channels
    params = sum(p.numel() for p in model.parameters())
    shape = measure(model, chans, size, 1, f"model {name!r}", "pick a model for this input "
                    "size", f"{size}x{size} images with {chans} channel(s)").output_shape
    if len(shape) != 2 or shape[1] != splits.num_classes:
        raise IGCError(f"model {name!r} gives outputs of shape {shape} for "
                       f"{size}x{size} images, not (1, {splits.num_classes})")
    return params, int(count_macs(model, size, chans))


__all__ = ["probe"]
