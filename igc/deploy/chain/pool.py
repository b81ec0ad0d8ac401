"""The global average pool before the classifier, on NHWC maps, for the fused forms of
:func:`igc.deploy.optimize`.

``nn.AdaptiveAvgPool2d(1)`` and ``nn.Flatten`` on a channels-last map reduce over its two
strided spatial dimensions; :class:`PixelMean` takes the mean over the pixels of the
NHWC view instead, one contiguous ``(N, H*W, C)`` tensor (MobileNetV2's 1280 x 7 x 7 map,
one thread: 72-83 against 134 us with the caches flushed, 9-10 against 14 us hot;
``benchmarks/outside_blocks.py``). Other input, tracing, compiling and export run the
original modules, kept as ``fallback``.

Shapes: ``(N, C, H, W) -> (N, C)``.
"""

from __future__ import annotations

import torch
from torch import nn

from igc.deploy.chain.modules import tracing
from igc.deploy.chain.pointwise import replace_module


class PixelMean(nn.Module):
    """The mean over the pixels of a channels-last map, ``(N, C, H, W) -> (N, C)``."""

    form = "pixel-mean"

    def __init__(self, fallback: nn.Module) -> None:
        super().__init__()
        self.fallback = fallback

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last)
                or torch.compiler.is_compiling() or tracing()):
            return self.fallback(x)
        n, c, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c).mean(1)


def is_global_pool(seq: nn.Module) -> bool:
    """Whether ``seq`` is ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))`` (output
    size 1 or (1, 1); flattening from dimension 1 to the last)."""
    if type(seq) is not nn.Sequential or len(seq) != 2:
        return False
    pool, flat = seq
    return (type(pool) is nn.AdaptiveAvgPool2d and pool.output_size in (1, (1, 1))
            and type(flat) is nn.Flatten and flat.start_dim == 1 and flat.end_dim == -1)


def fuse_pool(net: nn.Module) -> list[str]:
    """Replace, in place, every :func:`is_global_pool` module of ``net`` by a
    :class:`PixelMean`; returns the replaced names."""
    found = [name for name, mod in net.named_modules() if name and is_global_pool(mod)]
    for name in found:
        replace_module(net, name, PixelMean(net.get_submodule(name)))
    return found


__all__ = ["PixelMean", "fuse_pool", "is_global_pool"]
