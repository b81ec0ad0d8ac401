"""Channel shuffle: the permutation ``P_l`` between two group convolutions.

:func:`channel_shuffle` reads the memory format of its input, which ``torch.fx`` cannot
trace: it is registered with ``torch.fx.wrap``, so a traced network calls it as one node
(and ``torch.jit.script`` compiles it as it is)."""

from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C, H, W)``: view the channels as ``(groups, C/groups)`` and
    transpose, so channel ``i*(C/g) + j`` moves to ``j*g + i``.

    The transpose is a view; the one copy happens in ``reshape`` and keeps the memory
    format: a channels-last input gives a channels-last output. (Reshaping a
    channels-last tensor in NCHW terms would return an NCHW-contiguous tensor, and every
    later layer would then convert layouts: 2.7x slower training of a C = 32 IGCV2 block.)
    """
    n, c, h, w = x.shape
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups).transpose(3, 4)
        return nhwc.reshape(n, h, w, c).permute(0, 3, 1, 2)
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


torch.fx.wrap("channel_shuffle")


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
