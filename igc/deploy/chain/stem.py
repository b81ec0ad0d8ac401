"""The network's first convolution (the stem: a dense KxK convolution of the image, BN
folded, and its activation) as one call of the native kernel's ``stem_conv``, for the
fused forms of :func:`igc.deploy.optimize`.

The kernel reads the image in NCHW (as it arrives) and writes NHWC (as the blocks read
it), so the input is not converted first: with oneDNN the input's conversion to NHWC and
the convolution took about twice the kernel's time for MobileNet's 3 -> 32 stem at
224x224 (``benchmarks/outside_blocks.py``). Under tracing, compiling, export or a
dispatch mode, off the CPU or float32, and for an input that asks for a gradient (the
kernel has no backward), the original modules (kept as ``fallback``) run.

Shapes: ``(N, C_in, H, W)``, ``C_in`` at most :data:`STEM_CHANNELS`, ->
``(N, C_out, H_out, W_out)`` in channels-last memory.
"""

from __future__ import annotations

import torch
from torch import nn

from igc.deploy.chain.fast_chain import FastChain
from igc.deploy.chain.fused import ACTS, FusedChain
from igc.deploy.chain.pointwise import conv_act, replace_module, runs_native
from igc.deploy.native import native

#: Input channels up to which the first convolution is a stem (an image's 1-4).
STEM_CHANNELS = 4
#: Output vectors the kernel holds per pixel (64 outputs on AVX-512, 32 on AVX2).
STEM_VECTORS = 4


class NativeStem(nn.Module):
    """``act(conv(x))`` for the stem ``conv`` by the native kernel; ``fallback`` (the
    original modules) where it does not run (see the module docstring)."""

    form = "native-stem"

    def __init__(self, conv: nn.Conv2d, act: str | None, fallback: nn.Module,
                 lanes: int) -> None:
        super().__init__()
        self.fallback = fallback
        cout, cin, k, _ = conv.weight.shape
        cpad = -(-cout // lanes) * lanes
        weight = torch.zeros(cin * k * k, cpad)
        weight[:, :cout] = conv.weight.detach().float().permute(1, 2, 3, 0).reshape(-1, cout)
        bias = torch.zeros(cpad)
        if conv.bias is not None:
            bias[:cout] = conv.bias.detach().float()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.config = [cout, k, conv.stride[0], conv.padding[0], ACTS[act]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if module is None or not runs_native(x, one_thread=False):
            return self.fallback(x)
        return module.stem_conv(x.contiguous(), self.weight, self.bias, *self.config)


def stem_parts(seq: nn.Module, lanes: int) -> tuple[nn.Conv2d, str | None] | None:
    """:func:`~igc.deploy.chain.pointwise.conv_act` when its convolution is one the kernel
    takes: dense, at most :data:`STEM_CHANNELS` inputs and ``STEM_VECTORS * lanes``
    outputs, a square kernel, stride and padding, no dilation, zero padding."""
    found = conv_act(seq)
    if found is None:
        return None
    conv = found[0]
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    if (conv.groups != 1 or conv.in_channels > STEM_CHANNELS
            or conv.out_channels > STEM_VECTORS * lanes or isinstance(p, str)
            or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or conv.dilation != (1, 1)
            or conv.padding_mode != "zeros"):
        return None
    return found


def fuse_stem(net: nn.Module) -> bool:
    """Replace, in place, the ``nn.Sequential`` holding ``net``'s first convolution (in
    module order) by a :class:`NativeStem` when :func:`stem_parts` takes it; returns
    whether it did (the network then reads NCHW input). Nothing without the kernel."""
    module = native()
    if module is None:
        return False
    lanes = module.simd_width()
    parent_name = None
    for name, mod in net.named_modules():
        if isinstance(mod, nn.Conv2d):
            parent_name = name.rpartition(".")[0]
            break
        if isinstance(mod, (FastChain, FusedChain, NativeStem)):
            return False  # a block (or a stem already) comes first
    if not parent_name:
        return False
    seq = net.get_submodule(parent_name)
    found = stem_parts(seq, lanes)
    if found is None:
        return False
    replace_module(net, parent_name, NativeStem(found[0], found[1], seq, lanes))
    return True


__all__ = ["STEM_CHANNELS", "STEM_VECTORS", "NativeStem", "fuse_stem", "stem_parts"]
