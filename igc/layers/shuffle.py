"""Channel shuffle: the permutation ``P_l`` between two group convolutions."""

from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C, H, W)``: view the channels as ``(groups, C/groups)`` and
    transpose, so channel ``i*(C/g) + j`` moves to ``j*g + i``.

    The transpose is a view; the one copy happens in ``reshape`` (or, in channels-last
    memory, inside the next convolution's own layout conversion).
    """
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle` (ShuffleNet's convention, see
    :func:`igc.sparsity.shuffle_permutation`)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
