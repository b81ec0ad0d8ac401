"""Linear segments: maximal runs of 1x1 convolutions and permutations with no activation
between them (``P_L W_L ... P_1 W_1`` restricted to the 1x1 factors, IGCV2 eq. 4), the
unit that an inference form is chosen for.

:func:`split_segments` groups an operation list into segments and the operations between
them; a segment's biases are pushed to its end, so that its linear part is one matrix
(:meth:`Segment.dense_matrix`) or a sequence of block-diagonal factors and permutations
(:meth:`Segment.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from igc.deploy.chain.ops import Activation, ActOp, ConvOp, Op, PermOp, shuffle_groups


@dataclass(frozen=True)
class ConvStep:
    """A step of the structured form: a bias-free pointwise (grouped) convolution."""

    conv: ConvOp


@dataclass(frozen=True)
class ShuffleStep:
    """A step of the structured form: a channel shuffle of ``groups`` groups (a strided
    view, :func:`~igc.deploy.chain.ops.shuffle_groups`)."""

    groups: int


@dataclass(frozen=True)
class PermStep:
    """A step of the structured form: any other permutation, ``index`` (``(C,)``, new
    channel ``i`` is old channel ``index[i]``)."""

    index: torch.Tensor


#: One step of the structured form (:meth:`Segment.plan`).
PlanStep = ConvStep | ShuffleStep | PermStep


@dataclass
class Segment:
    """A linear run of 1x1 convolutions and permutations: ``items`` in order, each a
    ``PermOp`` or a bias-free ``ConvOp``; ``bias`` is the total bias at the end and
    ``act`` the activation fused after it."""

    items: list[ConvOp | PermOp]
    bias: torch.Tensor
    act: Activation | None = None

    @property
    def convs(self) -> list[ConvOp]:
        return [i for i in self.items if isinstance(i, ConvOp)]

    @property
    def in_channels(self) -> int:
        return self.convs[0].in_channels

    @property
    def out_channels(self) -> int:
        return self.convs[-1].out_channels

    def structured_macs(self) -> int:
        """Multiply-adds per pixel of the factor-by-factor product."""
        return sum(c.macs_per_pixel() for c in self.convs)

    def dense_macs(self) -> int:
        """Multiply-adds per pixel of the multiplied-out product."""
        return self.in_channels * self.out_channels

    def dense_matrix(self) -> torch.Tensor:
        """The segment multiplied out, ``(out, in)``, in the parameters' dtype and device."""
        ref = self.convs[0].weight
        total = torch.eye(self.in_channels, dtype=ref.dtype, device=ref.device)
        for item in self.items:
            if isinstance(item, PermOp):
                total = total[item.index.to(ref.device)]
            else:
                total = apply_pointwise(item, total)
        return total

    def plan(self) -> list[PlanStep]:
        """The steps of the structured form, a shuffle recognised as such."""
        steps: list[PlanStep] = []
        for item in self.items:
            if isinstance(item, ConvOp):
                steps.append(ConvStep(item))
            else:
                g = shuffle_groups(item.index)
                steps.append(ShuffleStep(g) if g else PermStep(item.index))
        return steps

    def describe(self) -> str:
        """E.g. ``"1x1/g8 shuffle(8) 1x1/g8"``."""
        parts = []
        for step in self.plan():
            if isinstance(step, ConvStep):
                g = step.conv.groups
                parts.append(f"1x1/g{g}" if g > 1 else "1x1")
            else:
                parts.append(f"shuffle({step.groups})" if isinstance(step, ShuffleStep)
                             else "perm")
        return " ".join(parts)


def apply_pointwise(conv: ConvOp, x: torch.Tensor) -> torch.Tensor:
    """A pointwise (grouped) convolution on a ``(C_in, X)`` matrix: ``(C_out, X)``."""
    g = conv.groups
    w = conv.weight.reshape(g, conv.out_channels // g, conv.in_channels // g)
    return torch.bmm(w, x.reshape(g, conv.in_channels // g, -1)).reshape(conv.out_channels, -1)


def structured_copies(segment: Segment) -> int:
    """Activation copies the structured form makes (found by running its reshapes on a
    meta tensor): loose shuffles whose next product has no strided view, generic
    permutations, and a permutation after the last factor."""
    plan = segment.plan()
    last = max(i for i, step in enumerate(plan) if isinstance(step, ConvStep))
    m = 5
    z = torch.empty(segment.in_channels, m, device="meta")
    copies = 0
    for step in plan[:last + 1]:
        if isinstance(step, ConvStep):
            conv = step.conv
            zr = z.reshape(conv.groups, conv.in_channels // conv.groups, m)
            copies += not zr._is_view()
            z = torch.empty(conv.out_channels, m, device="meta")
        elif isinstance(step, ShuffleStep):
            z = z.reshape(step.groups, -1, m).transpose(0, 1)
        else:
            copies += 1
            z = torch.empty(z.numel() // m, m, device="meta")
    return copies + (last + 1 < len(plan))


def make_segment(run: list[ConvOp | PermOp]) -> Segment:
    """A segment of ``run``: permutations kept in place, biases pushed to the end."""
    items: list[ConvOp | PermOp] = []
    bias: torch.Tensor | None = None
    for item in run:
        if isinstance(item, PermOp):
            items.append(PermOp(item.index.clone()))
            if bias is not None:
                bias = bias[item.index.to(bias.device)]
        else:
            conv = ConvOp(item.weight, None, item.groups)
            if bias is not None:
                bias = apply_pointwise(conv, bias.view(-1, 1)).view(-1)
            if item.bias is not None:
                bias = item.bias.clone() if bias is None else bias + item.bias
            items.append(conv)
    ref = next(i for i in items if isinstance(i, ConvOp)).weight
    if bias is None:
        channels = items[-1].out_channels if isinstance(items[-1], ConvOp) \
            else len(items[-1].index)
        bias = torch.zeros(channels, dtype=ref.dtype, device=ref.device)
    return Segment(items, bias)


def split_segments(ops: list[Op]) -> list[Op | Segment]:
    """Group maximal linear runs that contain at least one pointwise convolution into
    segments; an activation right after a segment joins it (fused in its epilogue)."""
    out: list[Op | Segment] = []
    run: list[ConvOp | PermOp] = []

    def flush() -> None:
        if any(isinstance(i, ConvOp) for i in run):
            out.append(make_segment(run))
        else:
            out.extend(run)
        run.clear()

    for op in ops:
        if isinstance(op, PermOp) or (isinstance(op, ConvOp) and op.pointwise):
            run.append(op)
        else:
            flush()
            out.append(op)
    flush()
    merged: list[Op | Segment] = []
    for part in out:
        if isinstance(part, ActOp) and merged and isinstance(merged[-1], Segment) \
                and merged[-1].act is None:
            merged[-1].act = part.fn
        else:
            merged.append(part)
    return merged


__all__ = ["ConvStep", "PermStep", "PlanStep", "Segment", "ShuffleStep", "apply_pointwise",
           "make_segment", "split_segments", "structured_copies"]
