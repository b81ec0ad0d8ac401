"""The fused form of a chain: the whole block in one native call per image band
(:mod:`igc.deploy.native`), with the chain's PyTorch form kept as the fallback.

:class:`FusedPlan` packs a lowered chain (:func:`~igc.deploy.chain.ops.lower`, shuffles
moved by :func:`~igc.deploy.chain.permute.move_permutations`, split by
:func:`~igc.deploy.chain.segments.split_segments`) for the kernel. The kernel computes the
pattern ``[pre segment] -> spatial conv [-> act] -> post segment [+ x]``, where a segment
is a run of grouped 1x1 factors whose permutations become the index tables each factor
reads its inputs through (no copies), BatchNorm is folded, and activations are ReLU,
ReLU6 or none. The spatial convolution must have as many inputs as outputs per group
(depthwise, or IGCV1's group 3x3). Anything else raises :class:`FusedUnsupported`
(one line), and the block keeps its PyTorch form.

``config`` (ints): ``C_in, C_s, C_out, K, stride, padding, kg, spatial_act, residual,
tile_rows, n_pre, pre_tail, n_post, post_tail, out_pixel``, then ``G, k, o, act`` per
factor (pre factors first); ``out_pixel``: the floats between the output's pixels (0:
``C_out``, channels-last; more: a padded map, :mod:`igc.deploy.chain.handover`).
``params`` (tensors): the spatial weight ``(K*K, 2kg-1, C_s padded)`` and bias, then per
factor its weight ``(G, k, o padded)`` (in panels of 64 output columns where its branches
are wider than 96: :func:`_paneled`), input index (int32, ``G*k``) and bias (empty but for
a segment's last factor), then each segment's trailing permutation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from igc.deploy.chain.block_cost import LANES, merge_factor
from igc.deploy.chain.modules import tracing
from igc.deploy.chain.ops import ActOp, ConvOp, LoweringError, Op, inverse, lower
from igc.deploy.chain.permute import move_permutations
from igc.deploy.chain.segments import Segment, split_segments
from igc.deploy.native import fused_block, native, native_reason
from igc.errors import IGCError
from igc.layers.blocks import IGCBlock

#: Activation codes of the kernel.
ACTS = {None: 0, "relu": 1, "relu6": 2}
#: Floats of the widest activation a tile should hold (sets the rows per tile).
TILE_FLOATS = 1 << 14
#: Pad channel counts to this (the widest SIMD vector, AVX-512; right for narrower ones).
_VL = LANES
#: Branches wider than PANEL_FROM outputs (padded) keep their weights in panels of PANEL
#: output columns (the kernel's ``kPanel``, ``kPanelFrom``).
PANEL, PANEL_FROM = 64, 96


class FusedUnsupported(LoweringError):
    """A chain the fused kernel cannot compute; the block keeps its PyTorch form."""


def _act(fn: object, where: str) -> int:
    if fn is None or (isinstance(fn, str) and fn in ACTS):
        return ACTS[fn]  # type: ignore[index]
    name = fn if isinstance(fn, str) else type(fn).__name__
    raise FusedUnsupported(f"the fused kernel has no {name} ({where}); it computes ReLU, "
                           "ReLU6 or no activation")


def _pad(n: int) -> int:
    return -(-n // _VL) * _VL


@dataclass(frozen=True)
class FusedParts:
    """The pattern the kernel computes, ``[pre] -> spatial [-> act] -> post [+ x]``, found
    in a lowered chain by :func:`fused_parts` (on any device, meta included)."""

    pre: Segment | None
    spatial: ConvOp
    spatial_act: int  # an :data:`ACTS` code
    post: Segment
    residual: bool

    @property
    def segments(self) -> list[Segment]:
        return [s for s in (self.pre, self.post) if s is not None]


def fused_parts(ops: list[Op], residual: bool = False) -> FusedParts:
    """The fused kernel's parts of a lowered chain (permutations moved, segments split);
    :class:`FusedUnsupported` (one line) when the kernel cannot compute it."""
    parts = split_segments(move_permutations(ops))
    pre: Segment | None = None
    if parts and isinstance(parts[0], Segment):
        pre, parts = parts[0], parts[1:]
    if not parts or not isinstance(parts[0], ConvOp) or parts[0].pointwise:
        raise FusedUnsupported("the fused kernel needs a spatial convolution between "
                               "the 1x1 segments")
    spatial, parts = parts[0], parts[1:]
    spatial_act = 0
    if parts and isinstance(parts[0], ActOp):
        spatial_act, parts = _act(parts[0].fn, "after the spatial convolution"), parts[1:]
    if len(parts) != 1 or not isinstance(parts[0], Segment):
        raise FusedUnsupported("the fused kernel computes [1x1 segment] -> spatial conv "
                               "-> 1x1 segment; this chain is "
                               + " -> ".join(type(p).__name__ for p in parts))
    post = parts[0]
    for seg in (pre, post):
        if seg is not None:
            _act(seg.act, "after a 1x1 segment")
    if spatial.weight.shape[1] != spatial.out_channels // spatial.groups \
            or spatial.in_channels != spatial.out_channels:
        raise FusedUnsupported("the fused kernel's spatial convolution needs as many "
                               "inputs as outputs per group")
    k = spatial.weight.shape[-1]
    cin = pre.in_channels if pre is not None else spatial.in_channels
    if residual and (cin != post.out_channels or spatial.stride != 1
                     or 2 * spatial.padding != k - 1):
        raise FusedUnsupported("a residual needs equal input and output shapes")
    return FusedParts(pre, spatial, spatial_act, post, residual)


class FusedPlan:
    """The kernel's ``params`` and ``config`` for a lowered chain (see the module
    docstring); ``parts`` (:class:`FusedParts`) and ``segments`` its linear segments
    (for :func:`block_forms` and the cost rule). ``residual``: add the input to the
    output. Raises :class:`FusedUnsupported`."""

    def __init__(self, ops: list[Op], residual: bool = False) -> None:
        self.parts = found = fused_parts(ops, residual)
        pre, spatial, post = found.pre, found.spatial, found.post
        weight = spatial.weight
        if weight.dtype != torch.float32 or weight.device.type != "cpu":
            raise FusedUnsupported(f"the fused kernel runs float32 on the CPU, not "
                                   f"{weight.dtype} on {weight.device.type}")
        cs = spatial.out_channels
        kg = cs // spatial.groups
        self.segments = found.segments
        pre_factors, pre_tail = self._factors(pre) if pre is not None else ([], None)
        post_factors, post_tail = self._factors(post)
        sw, sb = weight, spatial.bias
        if pre_tail is not None and spatial.groups == cs:
            # the pre segment's trailing permutation commutes with the depthwise conv and
            # the activation: it becomes the post segment's first index table
            inv = inverse(pre_tail)
            sw, sb = sw[inv], None if sb is None else sb[inv]
            w0, idx0, *rest = post_factors[0]
            post_factors[0] = (w0, pre_tail[idx0.long()].to(torch.int32), *rest)
            pre_tail = None
        k = spatial.weight.shape[-1]
        self.config = [
            pre.in_channels if pre is not None else cs, cs, post.out_channels, k,
            spatial.stride, spatial.padding, kg, found.spatial_act, int(residual), 1,
            len(pre_factors), int(pre_tail is not None), len(post_factors),
            int(post_tail is not None), 0]
        params = [self._spatial_weight(sw, kg), self._padded_bias(sb, cs)]
        for w, idx, b, groups, outs, act in (*pre_factors, *post_factors):
            self.config += [groups, w.shape[1], outs, act]
            params += [w, idx, b]
        params += [t.to(torch.int32) for t in (pre_tail, post_tail) if t is not None]
        self.params = [p.detach().contiguous() for p in params]
        self.widest = max([cs, *(f[0].shape[0] * f[4] for f in (*pre_factors, *post_factors))])

    def set_tile(self, width: int) -> None:
        """Choose the output rows per tile for an output ``width`` (columns)."""
        self.config[9] = max(1, -(-TILE_FLOATS // (self.widest * max(width, 1))))

    @staticmethod
    def _factors(seg: Segment) -> tuple[list, torch.Tensor | None]:
        """Per factor ``(weight (G, k, o padded), index int32, bias, G, o, act)`` and the trailing
        permutation (``None`` when there is none)."""
        pending: torch.Tensor | None = None
        convs: list[tuple[ConvOp, torch.Tensor]] = []
        for item in seg.items:
            if isinstance(item, ConvOp):
                idx = torch.arange(item.in_channels) if pending is None else pending
                convs.append((item, idx))
                pending = None
            else:
                index = item.index.cpu()
                pending = index if pending is None else pending[index]
        out: list = []
        act = _act(seg.act, "after a 1x1 segment")
        for n, (conv, idx) in enumerate(convs):
            g = conv.groups
            w = conv.weight.reshape(g, conv.out_channels // g, conv.in_channels // g)
            g, w = _merge_branches(w)
            last = n == len(convs) - 1
            if last:
                bias = seg.bias if pending is None else seg.bias[inverse(pending).to(
                    seg.bias.device)]
            else:
                bias = torch.empty(0)
            wt = torch.zeros(g, w.shape[2], _pad(w.shape[1]), dtype=torch.float32)
            wt[:, :, :w.shape[1]] = w.transpose(1, 2)
            out.append((_paneled(wt), idx.to(torch.int32), bias.float(), g, w.shape[1],
                        act if last else 0))
        return out, pending

    @staticmethod
    def _spatial_weight(weight: torch.Tensor, kg: int) -> torch.Tensor:
        """``(C, kg, K, K)`` as diagonals ``(K*K, 2kg-1, C padded)``: entry ``[t, d, c]``
        multiplies input channel ``c + d - (kg-1)`` for output channel ``c``."""
        c, _, k, _ = weight.shape
        taps = weight.reshape(c, kg, k * k)
        out = torch.zeros(k * k, 2 * kg - 1, _pad(c), dtype=torch.float32)
        pos = torch.arange(c) % kg
        for dd in range(2 * kg - 1):
            j = pos + dd - (kg - 1)
            ok = (j >= 0) & (j < kg)
            rows = torch.nonzero(ok).view(-1)
            out[:, dd, rows] = taps[rows, j[rows]].t()
        return out

    @staticmethod
    def _padded_bias(bias: torch.Tensor | None, c: int) -> torch.Tensor:
        out = torch.zeros(_pad(c), dtype=torch.float32)
        if bias is not None:
            out[:c] = bias
        return out


def pack_segment(segment: Segment) -> tuple[list[torch.Tensor], list[int]]:
    """``(params, config)`` of one 1x1 segment for the native ``segment`` entry (the
    kernel's 1x1 products alone, on ``(P, C_in)``): ``config`` is ``n_factors, has_tail``,
    then ``G, k, o, act`` per factor; ``params`` each factor's weight, index and bias, then
    the trailing permutation."""
    factors, tail = FusedPlan._factors(segment)
    config = [len(factors), int(tail is not None)]
    params: list[torch.Tensor] = []
    for w, idx, b, groups, outs, act in factors:
        config += [groups, w.shape[1], outs, act]
        params += [w, idx, b]
    if tail is not None:
        params.append(tail.to(torch.int32))
    return [p.detach().contiguous() for p in params], config


def _paneled(wt: torch.Tensor) -> torch.Tensor:
    """Branch weights ``(G, k, o padded)`` as the kernel reads them: rows of ``o padded``
    floats, or, for branches wider than :data:`PANEL_FROM`, panels of :data:`PANEL`
    output columns one after another, each ``(k, width)`` (the last one narrower), so
    that a pass over a panel reads one stream (the same numbers, the same size)."""
    g, k, width = wt.shape
    if width <= PANEL_FROM:
        return wt
    parts = [wt[:, :, p:p + PANEL].reshape(g, -1) for p in range(0, width, PANEL)]
    return torch.cat(parts, dim=1).reshape(g, k, width)


def _merge_branches(w: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Branches ``(G, o, k)`` of at most four outputs, joined ``m`` at a time
    (:func:`~igc.deploy.chain.block_cost.merge_factor`) into block-diagonal super-branches
    ``(G/m, m*o, m*k)`` (zeros off the diagonal) of up to eight outputs, so that the
    kernel's half vectors are full: the same lanes busy, a longer inner loop, whole-vector
    stores. Returns the new branch count and weights."""
    g, o, k = w.shape
    m = merge_factor(g, o)
    if m == 1:
        return g, w
    out = torch.zeros(g // m, m, o, m, k, dtype=w.dtype, device=w.device)
    blocks = w.reshape(g // m, m, o, k)
    for i in range(m):
        out[:, i, :, i, :] = blocks[:, i]
    return g // m, out.reshape(g // m, m * o, m * k)


class FusedChain(nn.Module):
    """A chain (and the block's identity skip when ``residual``) as one fused kernel call,
    ``(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)`` channels-last. ``fallback`` is
    the chain's PyTorch form (a :class:`~igc.deploy.chain.FastChain`): it runs under ONNX
    export and the JIT, and when the native kernel is unavailable. Float32 CPU input only
    (other input is refused in one line); any memory layout (converted to NHWC)."""

    form = "fused"

    def __init__(self, plan: FusedPlan, fallback: nn.Module, residual: bool = False,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.fallback = fallback
        self.residual = residual
        self.product = getattr(fallback, "product", None)
        self.stride = getattr(fallback, "stride", 1)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if input_shape is not None:
            k, s, p = plan.config[3:6]
            plan.set_tile((input_shape[3] + 2 * p - k) // s + 1)
        else:
            plan.set_tile(16)
        self.config = list(plan.config)
        for i, t in enumerate(plan.params):
            self.register_buffer(f"p{i}", t, persistent=False)
        self.count = len(plan.params)
        self.forms = [replace(f, form="fused", reason=f"one kernel call (else {f.form}: "
                              f"{f.reason})") for f in getattr(fallback, "forms", [])]

    def params(self) -> list[torch.Tensor]:
        # the buffers are p0..p{count-1} in registration order (the fallback's live in its
        # own module); read live, so .to() or a reassigned buffer is always seen
        return list(self._buffers.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if module is not None and _plain_eager(x) and x.is_cpu and x.dtype == torch.float32:
            # the kernel itself (it puts x in NHWC): the custom operator's Python dispatch
            # costs ~13 us a call, ~0.4 ms a forward for the 32 blocks of IGCV3-1.0
            return module.fused_block(x, self.params(), self.config)
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise IGCError(f"the fused form runs float32 CPU input, got {x.dtype} on "
                           f"{x.device.type} (optimize the model in another mode for it)")
        x = x.contiguous(memory_format=torch.channels_last)
        if _use_fallback():
            y = self.fallback(x)
            return y + x if self.residual else y
        return fused_block(x, self.params(), self.config)

    def extra_repr(self) -> str:
        return f"config={self.config}, residual={self.residual}"


def _plain_eager(x: torch.Tensor) -> bool:
    """True when nothing watches the call: a plain tensor, no tracer or compiler, no
    dispatch mode (FlopCounterMode, fake tensors, profiling modes see the custom operator),
    no gradient asked for (the operator's output then refuses a backward in one line, where
    the kernel's own output would have no gradient at all)."""
    if torch.compiler.is_compiling():  # first: dynamo cannot trace what follows
        return False
    return (type(x) is torch.Tensor and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._is_torch_function_mode_enabled() and not tracing()
            and not (x.requires_grad and torch.is_grad_enabled()))


def _use_fallback() -> bool:
    """ONNX export and the JIT see the PyTorch form; so does a process without the kernel."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.compiler.is_compiling():  # torch.compile / torch.export: the custom op
        return False
    if tracing():
        return True

    return native() is None


def fuse(chain: nn.Module, fallback: nn.Module, residual: bool = False,
         input_shape: tuple[int, ...] | None = None, plan: FusedPlan | None = None
         ) -> FusedChain:
    """The fused form of a :class:`~igc.layers.FactorChain` (plus the block's identity
    skip when ``residual``) with ``fallback`` (its :class:`FastChain`) kept; ``plan``: its
    :class:`FusedPlan` when already made. Raises :class:`FusedUnsupported` (one line)
    when the chain has no fused form or the native kernel is not available here."""
    plan = plan or FusedPlan(lower(chain), residual)  # type: ignore[arg-type]
    if native() is None:
        raise FusedUnsupported(f"the native kernel is not available ({native_reason()})")
    return FusedChain(plan, fallback, residual, input_shape)


def residual_parent(root: nn.Module, name: str) -> nn.Module | None:
    """The block whose identity skip wraps the chain at ``name`` (an ``IGCBlock`` with
    ``skip``), or ``None``."""
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if isinstance(parent, IGCBlock) and leaf == "body" and parent.skip:
        return parent
    return None


def unfused(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every :class:`FusedChain` replaced by its PyTorch form
    (and its block's skip restored): the same network without the native kernel, e.g. to
    compare the two."""
    from igc.deploy.chain.run import unchain  # run builds on this module

    out = copy.deepcopy(model)
    unchain(out)
    for name, module in list(out.named_modules()):
        if isinstance(module, FusedChain):
            parent_name, _, leaf = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, leaf, module.fallback)
            if module.residual:
                parent.skip = True
    return out


__all__ = ["ACTS", "TILE_FLOATS", "FusedChain", "FusedParts", "FusedPlan", "FusedUnsupported",
           "fuse", "fused_parts",
           "pack_segment", "residual_parent", "unfused"]
