"""The executable modules of a chain's inference form: spatial convolutions, leftover
permutations, and a linear segment in each of its three forms (``dense``, ``structured``,
``grouped``). Every module runs on any device and in any memory format of its input."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from igc.deploy.chain.ops import Activation, ConvOp, PermOp, activate, inverse, shuffle_groups
from igc.deploy.chain.segments import ConvStep, Segment, ShuffleStep
from igc.names import FORMS


def tracing() -> bool:
    """True while torch.compile, torch.export, ONNX export or the JIT traces the model:
    use functional code there (no ``out=``, no Python branching on storage)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.compiler.is_compiling():
        return True
    return _in_onnx_export()


@functools.cache
def _onnx_flags() -> tuple[object, object] | None:
    """The two flags ``torch.onnx.is_in_onnx_export`` reads (it imports their modules on
    every call, 1.1 us; read directly, 0.1 us: once per fused block per forward), or
    ``None`` where this torch keeps them elsewhere."""
    try:
        from torch.onnx._internal.exporter import _flags
        from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    except ImportError:
        return None
    if not hasattr(_flags, "_is_onnx_exporting") or not hasattr(GLOBALS, "in_onnx_export"):
        return None
    return _flags, GLOBALS


def _in_onnx_export() -> bool:
    found = _onnx_flags()
    if found is None:
        return bool(getattr(torch.onnx, "is_in_onnx_export", lambda: False)())
    flags, state = found
    return bool(state.in_onnx_export or flags._is_onnx_exporting)  # type: ignore[attr-defined]


def _param(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().contiguous(), requires_grad=False)


def _act_repr(act: Activation | None) -> str | None:
    return act if isinstance(act, str) or act is None else type(act).__name__


class SpatialConv(nn.Module):
    """A spatial (or any non-segment) convolution with bias and an activation."""

    def __init__(self, op: ConvOp, act: Activation | None = None) -> None:
        super().__init__()
        self.weight = _param(op.weight)
        self.bias = None if op.bias is None else _param(op.bias)
        self.stride, self.padding, self.groups = op.stride, op.padding, op.groups
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return activate(y, self.act)

    def extra_repr(self) -> str:
        w = self.weight.shape
        return (f"{w[1] * self.groups}->{w[0]}, k={w[2]}, stride={self.stride}, "
                f"groups={self.groups}, act={_act_repr(self.act)}")


class ActModule(nn.Module):
    """An activation that no convolution or segment before it could take."""

    def __init__(self, act: Activation) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(x, self.act)


class Permutation(nn.Module):
    """A permutation that no algebra could delete: a shuffle view copied, or a gather."""

    index: torch.Tensor  # a buffer

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.shuffle = shuffle_groups(index)
        self.register_buffer("index", index.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            n, c, h, w = x.shape
            fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                   and not x.is_contiguous() else torch.contiguous_format)
            y = x.view(n, self.shuffle, c // self.shuffle, h, w).transpose(1, 2)
            return y.reshape(n, c, h, w).contiguous(memory_format=fmt)
        return x.index_select(1, self.index)


class DenseSegment(nn.Module):
    """The segment multiplied out into one dense 1x1 convolution (bias, activation)."""

    form = "dense"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        self.weight = _param(segment.dense_matrix()[:, :, None, None])
        self.bias = _param(segment.bias)
        self.act = segment.act
        self.note = segment.describe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(F.conv2d(x, self.weight, self.bias), self.act)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}->{self.weight.shape[0]} [{self.note}], "
                f"act={_act_repr(self.act)}")


class GroupedSegment(nn.Module):
    """Grouped convolutions and explicit shuffles, BN folded: the trained form's arithmetic."""

    form = "grouped"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        steps: list[nn.Module] = []
        convs = segment.convs
        last = max(i for i, item in enumerate(segment.items) if isinstance(item, ConvOp))
        # the bias sits after the trailing permutations: move it before them
        tail = torch.arange(segment.out_channels)
        for item in segment.items[last + 1:]:
            if isinstance(item, PermOp):  # every item after the last product is one
                tail = tail[item.index]
        for item in segment.items:
            if isinstance(item, ConvOp):
                bias = segment.bias[inverse(tail).to(segment.bias.device)] \
                    if item is convs[-1] else None
                steps.append(SpatialConv(ConvOp(item.weight, bias, item.groups)))
            else:
                steps.append(Permutation(item.index))
        self.steps = nn.Sequential(*steps)
        self.act = segment.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.steps(x), self.act)


class StructuredSegment(nn.Module):
    """The segment as batched matrix products over the mixed-radix channel layout.

    The activation is a ``(C, M)`` matrix, ``M = N*H*W``, read from a channels-last input
    without a copy (its transpose is a column-major view). Every factor but the last is
    ``bmm(W (g, o, k), X (g, k, M))``, channel-major; a shuffle is a reshape-transpose *view*
    of the channel axis that the next product reads through its strides (for strictly
    complementary designs every operand stays a strided view; a copy happens only where no
    strided view exists, as in loose designs). The last factor is computed the other way
    round, ``X^T (g, M, k) @ W^T``, so that its result is written straight into the
    channels-last output (a channel-major output for NCHW input with one image). A trailing
    permutation is applied by the one copy that writes the result in place.
    """

    form = "structured"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        self.plan: list[tuple[str, int]] = []  # ("conv", i) | ("shuffle", g) | ("perm", i)
        self.weights = nn.ParameterList()
        perms = 0
        for step in segment.plan():
            if isinstance(step, ConvStep):
                conv = step.conv
                g = conv.groups
                w = conv.weight.reshape(g, conv.out_channels // g, conv.in_channels // g)
                self.plan.append(("conv", len(self.weights)))
                self.weights.append(_param(w))
            elif isinstance(step, ShuffleStep):
                self.plan.append(("shuffle", step.groups))
            else:
                self.register_buffer(f"perm{perms}", step.index.clone(), persistent=False)
                self.plan.append(("perm", perms))
                perms += 1
        self.last = max(i for i, (kind, _) in enumerate(self.plan) if kind == "conv")
        self.bias = _param(segment.bias)
        self.act = segment.act
        self.out_channels = segment.out_channels
        self.note = segment.describe()

    def _relabel(self, z: torch.Tensor, kind: str, arg: int, m: int) -> torch.Tensor:
        """Apply a permutation to a channel-major ``(..., M)`` activation: a view for a
        shuffle, a gather otherwise."""
        if kind == "shuffle":
            c = z.numel() // m
            return z.reshape(arg, c // arg, m).transpose(0, 1)
        return z.reshape(-1, m).index_select(0, getattr(self, f"perm{arg}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        m = n * h * w
        z = x.transpose(0, 1).reshape(c, m)  # a view for channels-last input or n == 1
        for kind, arg in self.plan[:self.last]:
            if kind == "conv":
                wt = self.weights[arg]
                g, _, k = wt.shape
                z = torch.bmm(wt, z.reshape(g, k, m))
            else:
                z = self._relabel(z, kind, arg, m)
        wt = self.weights[self.plan[self.last][1]]
        g, o, k = wt.shape
        tail = self.plan[self.last + 1:]
        zin = z.reshape(g, k, m)
        if tracing():
            return self._functional(x, zin, wt, tail)
        co = self.out_channels
        # a tail that is one shuffle by the last factor's own branches: logical channel
        # p*g + b is row p of branch b, so branch b's rows are every g-th output channel
        shuffled = len(tail) == 1 and tail[0] == ("shuffle", g)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = torch.empty((n, co, h, w), dtype=x.dtype, device=x.device,
                              memory_format=torch.channels_last)
            rows = out.permute(0, 2, 3, 1).reshape(m, co)  # a view: (M, C) row-major
            if not tail:
                torch.bmm(zin.transpose(1, 2), wt.transpose(1, 2),
                          out=rows.view(m, g, o).transpose(0, 1))
            else:  # one gather into place (cheaper here than any pair of copies)
                y = torch.bmm(zin.transpose(1, 2), wt.transpose(1, 2))  # (g, M, o)
                t = y.permute(0, 2, 1)  # channel-major view, storage order
                for kind, arg in tail:
                    t = self._relabel(t, kind, arg, m)
                rows.t().view(t.shape).copy_(t)
        else:
            out = torch.empty((n, co, h, w), dtype=x.dtype, device=x.device)
            cols = out.transpose(0, 1)  # (C, N, H, W)
            if n == 1 and not tail and m == 1:  # bmm's matrix-vector path is 5x slower
                torch.bmm(zin.transpose(1, 2), wt.transpose(1, 2),
                          out=cols.reshape(g, o, m).transpose(1, 2))
            elif n == 1 and not tail:
                torch.bmm(wt, zin, out=cols.reshape(g, o, m))
            elif n == 1 and shuffled:  # strided rows: row p of branch b is channel p*g + b
                torch.bmm(wt, zin, out=cols.reshape(o, g, m).transpose(0, 1))
            else:
                t = torch.bmm(wt, zin)
                for kind, arg in tail:
                    t = self._relabel(t, kind, arg, m)
                cols.copy_(t.reshape(co, n, h, w))
        out.add_(self.bias.view(1, co, 1, 1))
        return activate(out, self.act)

    def _functional(self, x: torch.Tensor, zin: torch.Tensor, wt: torch.Tensor,
                    tail: list[tuple[str, int]]) -> torch.Tensor:
        """The last product without ``out=`` (for tracers)."""
        n, _, h, w = x.shape
        m, co = n * h * w, self.out_channels
        z = torch.bmm(wt, zin)
        for kind, arg in tail:
            z = self._relabel(z, kind, arg, m)
        y = z.reshape(co, m) + self.bias.view(co, 1)
        y = activate(y, self.act).reshape(co, n, h, w).transpose(0, 1)
        if x.is_contiguous(memory_format=torch.channels_last):
            return y.contiguous(memory_format=torch.channels_last)
        return y.contiguous()

    def extra_repr(self) -> str:
        return f"[{self.note}], act={_act_repr(self.act)}"


SEGMENT_FORMS: dict[str, type[nn.Module]] = {
    "dense": DenseSegment, "structured": StructuredSegment, "grouped": GroupedSegment,
}


__all__ = ["FORMS", "SEGMENT_FORMS", "ActModule", "DenseSegment", "GroupedSegment",
           "Permutation", "SpatialConv", "StructuredSegment", "tracing"]
