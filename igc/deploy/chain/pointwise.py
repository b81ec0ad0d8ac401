"""A 1x1 convolution outside the IGC blocks (BatchNorm folded) and its activation as one
call of the native kernel's 1x1 product, for the fused forms of :func:`igc.deploy.optimize`.

The networks' last 1x1 convolution before the pool (MobileNetV2's and IGCV3's 320 -> 1280
at 7x7) reads its weights cold every forward: with the caches flushed oneDNN's
convolution and ReLU6 took 0.85-0.88 ms, the native product (one pass over the weights per
64 pixels, the activation in registers) 0.54-0.66 ms; 0.58-0.93x on the other shapes of
``benchmarks/outside_blocks.py``. :class:`NativePointwise` runs it so on one thread;
elsewhere (several threads, where oneDNN splits the work and the product does not; under
tracing, compiling, export or a dispatch mode; off the CPU or float32; for an input
that asks for a gradient) it runs the original modules, kept as ``fallback``, so outputs,
gradients and exports are as before.

Shapes: ``(N, C_in, H, W) -> (N, C_out, H, W)`` in channels-last memory.
"""

from __future__ import annotations

import torch
from torch import nn

from igc.deploy.chain.fused import pack_segment
from igc.deploy.chain.modules import tracing
from igc.deploy.chain.ops import ConvOp
from igc.deploy.chain.segments import Segment
from igc.deploy.native import native

#: Pixels per pass over the weights (the kernel's ``tile``).
TILE_PIXELS = 64
_ACTS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.ReLU6: "relu6"}


class NativePointwise(nn.Module):
    """``act(conv(x))`` for a 1x1 ``conv`` (stride 1, no padding or dilation, any groups,
    BatchNorm already folded into it) by the native 1x1 product; ``fallback`` (the
    original modules) runs where the product does not (see the module docstring)."""

    form = "native-pointwise"

    def __init__(self, conv: nn.Conv2d, act: str | None, fallback: nn.Module) -> None:
        super().__init__()
        self.fallback = fallback
        weight = conv.weight.detach().float()
        bias = torch.zeros(conv.out_channels) if conv.bias is None else conv.bias.detach()
        params, self.config = pack_segment(
            Segment([ConvOp(weight, None, conv.groups)], bias.float(), act))
        for i, t in enumerate(params):
            self.register_buffer(f"q{i}", t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if module is None or not runs_native(x):
            return self.fallback(x)
        n, c, h, w = x.shape
        flat = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        y = module.segment(flat.reshape(n * h * w, c), list(self._buffers.values()),
                           self.config, TILE_PIXELS, 0)
        return y.view(n, h, w, -1).permute(0, 3, 1, 2)


def runs_native(x: torch.Tensor, one_thread: bool = True, dims: int = 4) -> bool:
    """Whether a native layer outside the blocks runs on ``x``: a plain float32 CPU tensor
    of ``dims`` dimensions, no gradient asked for (the kernels have no backward: the modules then
    give one), nothing tracing, compiling, exporting or watching the call (dispatch
    modes), and one thread unless not ``one_thread``."""
    if torch.compiler.is_compiling():  # first: dynamo cannot trace what follows
        return False
    return (type(x) is torch.Tensor and x.dim() == dims and x.device.type == "cpu"
            and not (x.requires_grad and torch.is_grad_enabled())
            and x.dtype == torch.float32
            and (not one_thread or torch.get_num_threads() == 1)
            and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._is_torch_function_mode_enabled()
            and not tracing() and not torch.jit.is_scripting())


def conv_act(seq: nn.Module) -> tuple[nn.Conv2d, str | None] | None:
    """``(conv, activation name)`` when ``seq`` is an ``nn.Sequential`` of a convolution
    followed by identities and at most one ReLU or ReLU6 (a folded conv-BN-act), else
    ``None``."""
    if type(seq) is not nn.Sequential:
        return None
    mods = [m for m in seq if not isinstance(m, nn.Identity)]
    if not mods or len(mods) > 2 or type(mods[0]) is not nn.Conv2d:
        return None
    if len(mods) == 1:
        return mods[0], None
    act = _ACTS.get(type(mods[1]))
    return None if act is None else (mods[0], act)


def pointwise_parts(seq: nn.Module) -> tuple[nn.Conv2d, str | None] | None:
    """:func:`conv_act` when its convolution is 1x1 (no stride, padding or dilation)."""
    found = conv_act(seq)
    if found is None:
        return None
    conv = found[0]
    if (conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.padding != (0, 0)
            or conv.dilation != (1, 1) or conv.padding_mode != "zeros"):
        return None
    return found


def fuse_pointwise(net: nn.Module) -> list[str]:
    """Replace, in place, every :func:`pointwise_parts` ``nn.Sequential`` of ``net`` (after
    BatchNorm folding) by a :class:`NativePointwise`; returns the replaced names. Nothing
    is replaced without the native kernel."""
    if native() is None:
        return []
    found = [(name, seq) for name, seq in net.named_modules()
             if name and pointwise_parts(seq) is not None]
    for name, seq in found:
        conv, act = pointwise_parts(seq)  # type: ignore[misc]
        replace_module(net, name, NativePointwise(conv, act, seq))
    return [name for name, _ in found]


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted path ``name`` of ``root``."""
    parent = root.get_submodule(name.rpartition(".")[0]) if "." in name else root
    setattr(parent, name.rpartition(".")[2], new)


__all__ = ["TILE_PIXELS", "NativePointwise", "conv_act", "fuse_pointwise", "pointwise_parts",
           "replace_module", "runs_native"]
