"""Residual units of the CIFAR networks: two blocks and a shortcut, ``act(blocks(x) +
shortcut(x))``, in ResNet's post-activation form (official IGCV1 code).

The shortcut (:func:`make_shortcut`) is

* the identity when the unit keeps the shape;
* on a stage transition (stride 2, width doubles): a 1x1 convolution with the grouping of
  the first block's widening convolution, carrying the stride, then a norm (ResNet's
  option B; for IGCV1 the official code's group projection). Without it Xception C35's
  multiply-adds fall 4-13 % below Table 4's;
* on a widening at stride 1 (only the unit right after a stem narrower than the first
  stage: Xception C58/C71/C83 behind their 35-channel stem, IGCV2* behind its 64-channel
  stem): the input with zero channels appended (ResNet's option A, no weights). The paper's
  counts leave no room for a projection there: with one, all six Table 3 rows of these
  two families are 2.4-4.6 % over the paper's multiply-adds, the whole excess being that
  projection at 32x32 (``docs/zoo.md``); without it they match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from igc.layers import IGCBlock, make_activation
from igc.layers.chain import ActLayer, NormLayer

__all__ = ["ResidualUnit", "ZeroPadShortcut", "make_shortcut"]


class ZeroPadShortcut(nn.Module):
    """``(N, C_in, H, W) -> (N, C_out, H, W)``, ``C_out > C_in``: the input followed by
    ``C_out - C_in`` zero channels (ResNet's parameter-free option A)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


def make_shortcut(block: IGCBlock, out_channels: int | None = None,
                  norm_layer: NormLayer | None = None) -> nn.Module:
    """The shortcut of a residual unit that starts with ``block`` and ends at ``out_channels``
    channels (see the module docstring): identity, zero padding (stride 1, wider), or a
    1x1 convolution with the grouping of the block's widening factor (the first factor
    that changes the width; dense when none does) and a norm."""
    in_channels, stride = block.in_channels, block.stride
    out_channels = block.out_channels if out_channels is None else out_channels
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if stride == 1 and out_channels > in_channels:
        return ZeroPadShortcut(in_channels, out_channels)
    widening = [f for f in block.product.factors if f.in_channels != f.out_channels]
    groups = widening[0].groups if widening else 1
    if in_channels % groups or out_channels % groups:
        groups = math.gcd(groups, math.gcd(in_channels, out_channels))
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, groups=groups,
                                   bias=False),
                         (norm_layer or nn.BatchNorm2d)(out_channels))


class ResidualUnit(nn.Module):
    """``act(blocks(x) + shortcut(x))``: the skip connection every two blocks. The last
    block must be built without its final activation (``final_act=False``): the unit's
    ``act`` (ReLU, or ``act_layer()``) follows the addition instead."""

    def __init__(self, blocks: Sequence[IGCBlock], shortcut: nn.Module,
                 act_layer: ActLayer | None = None) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.shortcut = shortcut
        self.act = make_activation("relu", act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.blocks(x) + self.shortcut(x))
