"""The inference form of a :class:`~igc.layers.FactorChain`: lower it
(:mod:`~igc.deploy.chain.ops`), delete its shuffles (:mod:`~igc.deploy.chain.permute`),
split it into linear segments (:mod:`~igc.deploy.chain.segments`), pick a form per segment
(the cost rule of :mod:`~igc.deploy.chain.cost`, or a measurement) and build the modules
(:mod:`~igc.deploy.chain.modules`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from igc.deploy.chain.cost import CostModel, cost_model
from igc.deploy.chain.modules import (
    FORMS,
    SEGMENT_FORMS,
    ActModule,
    Permutation,
    SpatialConv,
)
from igc.deploy.chain.ops import ActOp, ConvOp, Op, PermOp, lower
from igc.deploy.chain.permute import move_permutations
from igc.deploy.chain.segments import Segment, split_segments
from igc.deploy.chain.small_dense import small_dense_form
from igc.deploy.timing import device_sync, time_interleaved
from igc.errors import IGCError
from igc.layers.chain import FactorChain
from igc.names import CHAIN_MODES


@dataclass
class FormChoice:
    """What :class:`FastChain` chose for one linear segment."""

    segment: str
    form: str
    reason: str
    dense_macs: int
    structured_macs: int
    #: the cost model's time of the whole block in its chosen form (seconds per call;
    #: set by ``optimize(mode="auto")``), else ``None``
    predicted_s: float | None = None


@dataclass(frozen=True)
class Context:
    """What a form is chosen for: the input ``(N, C, H, W)`` of the chain (``None``:
    unknown, small), its memory format (``channel_major``: NCHW), the cost model, the
    device and dtype the modules run in, and timing rounds for ``"measure"``."""

    input_shape: tuple[int, int, int, int] | None = None
    channel_major: bool = False
    cost: CostModel | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    repeats: int = 5


def _measure(segment: Segment, shape: tuple[int, ...], ctx: Context
             ) -> tuple[nn.Module, str]:
    """Time every form of ``segment`` on a random input of ``shape``; keep the fastest."""
    x = torch.randn(shape, device=ctx.device, dtype=ctx.dtype)
    if not ctx.channel_major:
        x = x.contiguous(memory_format=torch.channels_last)
    candidates = {f: SEGMENT_FORMS[f](segment).to(ctx.device, ctx.dtype) for f in FORMS}
    with torch.inference_mode():
        calls = {f: (lambda c=c: c(x)) for f, c in candidates.items()}
        timing = time_interleaved(calls, repeats=ctx.repeats, warmup=1, min_sample_s=0.001,
                                  sync=device_sync(ctx.device))
    best = min(timing, key=lambda f: timing[f].median)
    return candidates[best], "measured " + " ".join(
        f"{f}={timing[f].median * 1e6:.0f}us" for f in FORMS)


def _segment_step(segment: Segment, mode: str, shape: tuple[int, ...] | None, ctx: Context
                  ) -> tuple[nn.Module, str]:
    if mode == "measure":
        if shape is None:
            raise IGCError("mode 'measure' needs the chain's input shape")
        return _measure(segment, shape, ctx)
    if mode == "auto":
        pixels = None if shape is None else shape[0] * shape[2] * shape[3]
        form, reason = (ctx.cost or cost_model(ctx.device)).choose(segment, pixels,
                                                                   ctx.channel_major)
    elif mode == "small-dense":
        form, reason = small_dense_form(segment)
    elif mode in FORMS:
        form, reason = mode, "asked"
    else:
        raise IGCError(f"unknown form {mode!r}; use one of {', '.join(CHAIN_MODES)}")
    return SEGMENT_FORMS[form](segment), reason


def build_steps(ops: list[Op], mode: str | Sequence[str] = "auto",
                ctx: Context | None = None) -> tuple[nn.Sequential, list[FormChoice]]:
    """Executable modules for an operation list, and the form chosen per segment.

    ``mode``: one of :data:`CHAIN_MODES` for every linear segment, or a list with one per
    segment. The permutations are moved first (:func:`move_permutations`); the modules
    are built on ``ctx.device`` in ``ctx.dtype``.
    """
    ctx = ctx or Context()
    parts = split_segments(move_permutations(ops))
    count = sum(isinstance(p, Segment) for p in parts)
    modes = [mode] * count if isinstance(mode, str) else list(mode)
    if len(modes) != count:
        raise IGCError(f"give one form per linear segment ({count}), got {len(modes)}")
    shape = ctx.input_shape
    forms: list[FormChoice] = []
    steps: list[nn.Module] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if isinstance(part, Segment):
            here = None if shape is None else (shape[0], part.in_channels, *shape[2:])
            step, reason = _segment_step(part, modes[len(forms)], here, ctx)
            steps.append(step)
            forms.append(FormChoice(part.describe(), getattr(step, "form", "?"), reason,
                                    part.dense_macs(), part.structured_macs()))
            if shape is not None:
                shape = (shape[0], part.out_channels, shape[2], shape[3])
        elif isinstance(part, ConvOp):
            fused = isinstance(nxt, ActOp)  # the activation runs in the conv module
            steps.append(SpatialConv(part, nxt.fn if fused else None))  # type: ignore[union-attr]
            i += fused
            if shape is not None:
                shape = (shape[0], part.out_channels, part.output_size(shape[2]),
                         part.output_size(shape[3]))
        elif isinstance(part, ActOp):
            steps.append(ActModule(part.fn))
        elif isinstance(part, PermOp):
            steps.append(Permutation(part.index))
        i += 1
    return nn.Sequential(*steps).to(ctx.device, ctx.dtype), forms


class FastChain(nn.Module):
    """Inference form of a :class:`~igc.layers.FactorChain` (same call signature),
    ``(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)``.

    ``mode`` is ``"auto"`` (the cost rule, for ``input_shape`` when given), one of
    :data:`~igc.deploy.chain.modules.FORMS` for every segment, ``"small-dense"``
    (:mod:`~igc.deploy.chain.small_dense`), ``"measure"`` (time every
    form at ``input_shape``), or a list with one form per segment. ``cost`` replaces the
    device's cost model (:func:`~igc.deploy.chain.cost.cost_model`). The modules are built
    on the chain's device and in its dtype. ``forms`` records each choice. Raises
    :class:`~igc.deploy.chain.ops.LoweringError` for a chain without an exact inference
    form.
    """

    def __init__(self, chain: FactorChain, mode: str | Sequence[str] = "auto", *,
                 input_shape: Sequence[int] | None = None, channel_major: bool = False,
                 cost: CostModel | None = None) -> None:
        super().__init__()
        weight = next(m.weight for m in chain.modules() if isinstance(m, nn.Conv2d))
        shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        if shape is not None and len(shape) != 4:
            raise IGCError(f"input_shape must be (N, C, H, W), got {shape}")
        ctx = Context(shape, channel_major, cost, weight.device, weight.dtype)  # type: ignore[arg-type]
        self.product = chain.product
        self.stride = chain.stride
        self.steps, self.forms = build_steps(lower(chain), mode, ctx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x)

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        return self.product.branch_sizes


__all__ = ["CHAIN_MODES", "Context", "FastChain", "FormChoice",
           "build_steps"]
