"""The price of a whole block in its two inference forms, and the choice between them
(``optimize(mode="auto")``, ``igc design --rank latency``).

* **Unfused** (:class:`~igc.deploy.chain.FastChain`): its parts in order, each a pass over
  the activations: a linear 1x1 segment in the form :meth:`CostModel.choose` picks, at
  :meth:`CostModel.estimate`'s price; a spatial convolution at ``max(MACs / rate, bytes /
  memory_rate)`` (``rate``: ``spatial_rate`` for a depthwise one at stride 1,
  ``strided_spatial_rate`` at stride 2 or more, both times ``channel_major_spatial`` on a
  channel-major activation, else ``dense_rate * efficiency(taps)`` for ``taps`` inputs
  per output); a lone activation or permutation, one read and
  one write; the block's identity skip, one add (two reads, one write).
* **Fused** (:mod:`igc.deploy.chain.fused`): one pass, ``max(compute, bytes /
  memory_rate)`` with the input read once and the output written once (the skip read
  once more); compute = each 1x1 factor's *executed* multiply-adds
  (:func:`executed_macs`: channel counts padded to :data:`LANES`, narrow branches joined
  into block-diagonal super-branches whose zeros are computed) at ``fused_rate * min(1,
  k / fused_full_branch)`` for branches of ``k`` inputs (the pre segment on every input
  pixel, the post segment on every output pixel), plus the spatial pass's executed
  multiply-adds at ``fused_spatial_rate``; on a channel-major (NCHW) input one more pass
  converts it to NHWC.

Prices are seconds per call for a chain input ``(N, C, H, W)``; without a shape, per input
pixel, operands in cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from igc.deploy.chain.cost import CostModel, ramp
from igc.deploy.chain.ops import ActOp, ConvOp, Op, PermOp
from igc.deploy.chain.permute import move_permutations
from igc.deploy.chain.segments import Segment, split_segments

if TYPE_CHECKING:  # fused.py imports this module
    from igc.deploy.chain.fused import FusedParts

#: Floats per SIMD vector the fused kernel pads channel counts to (AVX-512; narrower
#: vectors run the same padded counts).
LANES = 16
#: A 1x1 branch of at most this many outputs runs on half vectors (8 floats, AVX2 width):
#: on Zen 4 two 256-bit multiply-adds issue per cycle against one 512-bit one, so eight
#: outputs cost what sixteen do on full vectors, without the zeros of joined branches.
HALF_LANES = 8

Shape = tuple[int, int, int, int]


def _pad(n: int) -> int:
    return -(-n // LANES) * LANES


def merge_factor(groups: int, outs: int) -> int:
    """How many branches of ``outs`` outputs the fused kernel joins into one
    block-diagonal super-branch, so that its vectors are full (a power of two that
    divides ``groups``, at most ``HALF_LANES / outs``: branches of up to eight outputs run
    on half vectors, wider ones on full vectors, padded)."""
    m = 1
    while outs * m * 2 <= HALF_LANES and groups % (m * 2) == 0:
        m *= 2
    return m


def padded_outputs(outs: int) -> int:
    """The outputs the kernel computes for a (joined) branch of ``outs``: a half vector
    for up to :data:`HALF_LANES`, else whole vectors."""
    return HALF_LANES if outs <= HALF_LANES else _pad(outs)


def executed_macs(conv: ConvOp) -> tuple[int, int]:
    """``(multiply-adds per pixel, inputs per branch)`` the fused kernel executes for a
    (grouped) 1x1 factor: joined branches and padded vectors computed zeros included."""
    g = conv.groups
    outs, ins = conv.out_channels // g, conv.in_channels // g
    m = merge_factor(g, outs)
    return (g // m) * padded_outputs(m * outs) * (m * ins), m * ins


def spatial_executed_macs(conv: ConvOp) -> int:
    """Multiply-adds per output pixel the fused kernel executes for its spatial
    convolution (``kg`` channels per group as ``2 kg - 1`` diagonals over padded
    channels)."""
    kg = conv.out_channels // conv.groups
    return conv.weight.shape[-1] * conv.weight.shape[-2] * (2 * kg - 1) * _pad(conv.out_channels)


def spatial_seconds(cost: CostModel, op: ConvOp, channel_major: bool = False) -> float:
    """Seconds per output pixel of the unfused form's spatial convolution, on a
    channels-last or a channel-major (NCHW) activation."""
    taps = op.weight.shape[1] * op.weight.shape[2] * op.weight.shape[3]  # inputs per output
    if op.weight.shape[1] == 1:  # depthwise: PyTorch's kernel is slower per MAC when strided
        rate = cost.spatial_rate if op.stride == 1 else cost.strided_spatial_rate
        if channel_major:
            rate *= cost.channel_major_spatial
    else:  # grouped: a batched product of branches
        rate = cost.dense_rate * cost.efficiency(taps)
    return max(op.macs_per_pixel() / rate,
               4 * (op.in_channels + op.out_channels) / cost.memory_rate)


def _count(shape: Shape | None) -> float:
    return 1.0 if shape is None else float(shape[0] * shape[2] * shape[3])


def _after(op: ConvOp, shape: Shape | None, count: float) -> tuple[Shape | None, float]:
    """The shape and pixel count after a spatial convolution."""
    if shape is None:
        return None, count / op.stride ** 2
    out = (shape[0], op.out_channels, op.output_size(shape[2]), op.output_size(shape[3]))
    return out, _count(out)


def unfused_seconds(cost: CostModel, parts: Sequence[Op | Segment], shape: Shape | None,
                    channel_major: bool = False, residual: bool = False
                    ) -> tuple[float, tuple[str, ...]]:
    """``(seconds, kernels)``: the unfused form of a chain split into ``parts``
    (:func:`~igc.deploy.chain.segments.split_segments` after
    :func:`~igc.deploy.chain.permute.move_permutations`) for input ``shape``, and the
    kernel each part runs (e.g. ``("dw3x3", "structured")``)."""
    count = _count(shape)
    channels = None if shape is None else shape[1]
    seconds, kernels = 0.0, []
    for i, part in enumerate(parts):
        pixels = None if shape is None else int(count)
        if isinstance(part, Segment):
            form, _ = cost.choose(part, pixels, channel_major)
            seconds += count * cost.estimate(part, pixels, channel_major)[form]
            kernels.append(form)
            channels = part.out_channels
        elif isinstance(part, ConvOp):
            shape, count = _after(part, shape, count)
            seconds += count * spatial_seconds(cost, part, channel_major)
            k = part.weight.shape[-1]
            kernels.append(f"dw{k}x{k}" if part.depthwise else
                           f"conv{k}x{k}/g{part.groups}" if part.groups > 1 else f"conv{k}x{k}")
            channels = part.out_channels
        elif isinstance(part, ActOp) and i and isinstance(parts[i - 1], ConvOp):
            continue  # runs inside the convolution module before it
        else:  # a lone activation or permutation: one pass over the activation
            if isinstance(part, PermOp):
                channels = len(part.index)
            seconds += count * 8 * (channels or 0) / cost.memory_rate
            kernels.append("act" if isinstance(part, ActOp) else "permute")
    if residual:
        seconds += count * 12 * (channels or 0) / cost.memory_rate
        kernels.append("add")
    return seconds, tuple(kernels)


def _products(cost: CostModel, segment: Segment | None) -> float:
    """Seconds per pixel of a segment's 1x1 products in the fused kernel."""
    if segment is None:
        return 0.0
    total = 0.0
    for conv in segment.convs:
        macs, k = executed_macs(conv)
        total += macs / (cost.fused_rate * ramp(k, cost.fused_full_branch))
    return total


def fused_seconds(cost: CostModel, pre: Segment | None, spatial: ConvOp, post: Segment,
                  shape: Shape | None, residual: bool = False, channel_major: bool = False
                  ) -> float:
    """Seconds of the fused kernel's call for ``[pre] -> spatial -> post [+ x]`` on input
    ``shape`` (see the module docstring)."""
    count_in = _count(shape)
    _, count_out = _after(spatial, shape, count_in)
    cin = pre.in_channels if pre is not None else spatial.in_channels
    compute = count_in * _products(cost, pre) + count_out * (
        spatial_executed_macs(spatial) / cost.fused_spatial_rate + _products(cost, post))
    floats = count_in * cin + count_out * post.out_channels * (1 + residual)
    seconds = max(compute, 4 * floats / cost.memory_rate)
    if channel_major:  # the input converted to NHWC first
        seconds += 8 * count_in * cin / cost.memory_rate
    return seconds


@dataclass(frozen=True)
class BlockPrice:
    """A block's price in both forms and the choice between them (the one rule of
    ``optimize(mode="auto")`` and ``igc design --rank latency``)."""

    unfused: float
    kernels: tuple[str, ...]  # the unfused form's kernel per part
    fused: float | None = None  # None: not priced fused (no kernel, or unsupported)
    veto: str = ""  # CostModel.fused_veto's objection, if any

    @property
    def use_fused(self) -> bool:
        """The fused kernel is priced, not vetoed and cheaper."""
        return self.fused is not None and not self.veto and self.fused < self.unfused

    @property
    def seconds(self) -> float:
        """The price of the chosen form."""
        return self.fused if self.use_fused and self.fused is not None else self.unfused


def price_block(cost: CostModel, ops: list[Op], parts: FusedParts | None,
                shape: Shape | None, channel_major: bool = False,
                split: bool = False) -> BlockPrice:
    """The unfused price of the lowered chain ``ops`` and, given its fused ``parts``
    (``None``: the fused kernel is not a choice), the fused price and veto (``split``:
    the batch runs in micro-batches of ``shape``'s batch, :meth:`CostModel.fused_veto`)."""
    residual = parts is not None and parts.residual
    unfused, kernels = unfused_seconds(cost, split_segments(move_permutations(ops)), shape,
                                       channel_major, residual)
    if parts is None:
        return BlockPrice(unfused, kernels)
    pixels = None if shape is None else shape[0] * shape[2] * shape[3]
    return BlockPrice(unfused, kernels,
                      fused_seconds(cost, parts.pre, parts.spatial, parts.post, shape,
                                    residual, channel_major),
                      cost.fused_veto(parts.segments, pixels, split))


def price_text(seconds: float, shape: Shape | None) -> str:
    """``"12.3 us"`` per call, or ``"4.5 ns/input pixel"`` without a shape."""
    return f"{seconds * 1e6:.1f} us" if shape is not None else f"{seconds * 1e9:.1f} ns/input pixel"


__all__ = ["HALF_LANES", "LANES", "BlockPrice", "executed_macs", "fused_seconds", "merge_factor",
           "price_block", "price_text", "spatial_executed_macs", "spatial_seconds",
           "unfused_seconds"]
