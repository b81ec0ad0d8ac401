"""The latency-aware designer: the designer's candidates (:func:`igc.sparsity.design`)
ranked by how fast their inference form runs on the machine at hand, beside their
parameters (``igc design --rank latency``).

Designs of equal cost (eq. 7: ``(1, 4, 4, 4)`` and ``(1, 2, 2, 2, 2, 2, 2)`` both have
1,344 weights at ``C = 64``) do not run equally fast: each 1x1 factor is a pass over the
activations, and small branches use the arithmetic units badly. Two sources of latency:

* ``"model"`` (fast, the default): the cost model (:class:`~igc.deploy.chain.CostModel`,
  calibrated by ``igc bench --calibrate`` or built in) prices the inference form that
  ``optimize()`` builds for the block. The block is lowered on the meta device (no
  weights are allocated) exactly as ``optimize()`` lowers it and priced as
  ``optimize(mode="auto")`` prices it (:mod:`igc.deploy.chain.block_cost`): the unfused
  form (each linear 1x1 segment in the form :meth:`CostModel.choose` picks, the spatial
  convolution a roofline pass, a lone activation or permutation one pass) and, where the
  native kernel is available here, the fused kernel; the cheaper counts (kernels
  ``fused`` when it is the fused one).
* ``"measure"``: every candidate block is built, ``optimize()`` d (in each optimize mode
  that applies: ``"auto"``, and ``"fused"`` where :data:`igc.names.MODES` has it; the
  fastest counts) and timed on ``batch`` random images of ``size x size``, interleaved
  (:func:`~igc.deploy.timing.time_interleaved`), medians and IQRs, with the load average.

The block of a design is the linear IGCV2 block of the paper's CIFAR networks: every
factor followed by BatchNorm (folded away in the inference form), one ReLU at the end,
stride 1, without the residual (the same for every design of a width).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from igc.checks import (
    MAX_LATENCY_BATCH,
    MAX_LATENCY_CANDIDATES,
    MAX_LATENCY_REPEATS,
    MAX_LATENCY_SIZE,
    MAX_THREADS,
    check_choice,
    check_int,
)
from igc.deploy.chain.block_cost import price_block
from igc.deploy.chain.cost import CostModel, cost_model
from igc.deploy.chain.fused import FusedUnsupported, fused_parts
from igc.deploy.chain.ops import lower
from igc.deploy.native import native, native_reason
from igc.deploy.optimize import optimize
from igc.deploy.timing import time_interleaved
from igc.errors import IGCError
from igc.layers.blocks import IGCBlock
from igc.names import LATENCY_SOURCES, MODES
from igc.runtime import num_threads
from igc.sparsity.design import Design, design

#: Largest input side and batch a ranking is priced or timed at (:mod:`igc.checks`).
MAX_SIZE = MAX_LATENCY_SIZE
MAX_BATCH = MAX_LATENCY_BATCH
#: Largest activation (``batch * C * size^2`` floats) a measurement allocates, and the most
#: weights one measured block may have (a dense 3x3 of a wide block has ``9 C^2``).
MAX_MEASURED_FLOATS = 1 << 28
MAX_MEASURED_PARAMS = 1 << 26
#: The most candidates one ranking takes, and timed rounds of ``"measure"``.
MAX_CANDIDATES = MAX_LATENCY_CANDIDATES
MAX_REPEATS = MAX_LATENCY_REPEATS


def design_block(d: Design, device: torch.device | str | None = None) -> nn.Module:
    """The linear IGCV2 block of design ``d``: ``(N, C, H, W) -> (N, C, H, W)``, every
    factor followed by BatchNorm, one ReLU at the end, no residual (eval mode). On the
    ``"meta"`` device no weights are allocated."""
    acts: list[str | None] = [None] * (d.layers - 1) + ["relu"]
    with torch.device(device or "cpu"):
        return IGCBlock(d.product, acts=acts).eval()


def predict(d: Design, size: int = 32, batch: int = 1, cost: CostModel | None = None,
            fused: bool | None = None) -> tuple[float, tuple[str, ...]]:
    """``(seconds, steps)``: the cost model's time for one call of design ``d``'s
    inference form on ``batch`` images of ``size x size`` (stride 1), and the step the
    form runs per part (e.g. ``("dw3x3", "structured")``, or ``("fused",)``): the cheaper
    of the unfused form and, where ``fused`` (default: the native kernel is available
    here), the fused kernel, as ``optimize(mode="auto")`` chooses
    (:mod:`igc.deploy.chain.block_cost`)."""
    cost = cost or cost_model("cpu")
    ops = lower(design_block(d, "meta").body)
    if fused is None:
        fused = native() is not None
    parts = None
    if fused:
        with contextlib.suppress(FusedUnsupported):  # priced unfused only
            parts = fused_parts(ops)
    price = price_block(cost, ops, parts, (batch, d.channels, size, size))
    return (price.seconds, ("fused",)) if price.use_fused else (price.unfused, price.kernels)


@dataclass(frozen=True)
class LatencyRow:
    """One ranked design: seconds per call (median when measured), the IQR (measured
    only), the optimize mode that gave it and the kernels its inference form runs: priced,
    each spatial convolution (e.g. ``dw3x3``) and each segment's kernel (e.g.
    ``structured``); measured, the segment kernels ``optimize()`` chose."""

    design: Design
    seconds: float
    iqr: float | None
    mode: str
    kernels: tuple[str, ...]

    def to_dict(self, fastest: float) -> dict:
        """The design's fields (:meth:`Design.to_dict`) with ``latency_us``, ``iqr_us``,
        ``ratio_to_fastest``, ``mode`` and ``kernels``."""
        return {**self.design.to_dict(), "latency_us": self.seconds * 1e6,
                "iqr_us": None if self.iqr is None else self.iqr * 1e6,
                "ratio_to_fastest": self.seconds / fastest, "mode": self.mode,
                "kernels": list(self.kernels)}


@dataclass
class LatencyRanking:
    """Designs of one width ordered by latency, fastest first (ties in the designer's
    order: fewest parameters first), with what they were priced or timed at."""

    channels: int
    kernel_area: int
    rows: list[LatencyRow]
    source: str  # "model" | "measure"
    size: int
    batch: int
    threads: int
    cost: CostModel | None = None  # the model that priced them ("model")
    load_average: tuple[float, float] | None = None  # 1-minute, before and after ("measure")
    repeats: int | None = None  # timed rounds ("measure")
    notes: list[str] = field(default_factory=list)

    @property
    def fastest(self) -> LatencyRow:
        """The first-ranked row."""
        return self.rows[0]

    def to_dict(self) -> dict:
        """JSON-ready: the request, the cost model or load average, and the ranked designs."""
        cost = None if self.cost is None else {"source": self.cost.source,
                                               "constants": self.cost.constants()}
        return {"channels": self.channels, "kernel_area": self.kernel_area, "rank": "latency",
                "latency": self.source, "size": self.size, "batch": self.batch,
                "threads": self.threads, "repeats": self.repeats, "cost_model": cost,
                "load_average": None if self.load_average is None else list(self.load_average),
                "notes": list(self.notes),
                "designs": [r.to_dict(self.fastest.seconds) for r in self.rows]}

    def header(self) -> str:
        """One line: what was ranked, how, and at what input."""
        how = (f"the cost model ({self.cost.source})" if self.cost is not None
               else f"measurement, {self.threads} thread(s), medians of {self.repeats} "
                    "interleaved rounds")
        text = (f"C={self.channels} S={self.kernel_area}: {len(self.rows)} design(s) ranked by "
                f"latency from {how}; one block at {self.size}x{self.size}, batch {self.batch}")
        if self.load_average is not None:
            text += (f"; load average {self.load_average[0]:.2f} before, "
                     f"{self.load_average[1]:.2f} after")
        return text

    def table(self) -> str:
        """A plain-text table, fastest first: branch sizes, L, parameters, microseconds
        (with the IQR when measured), the ratio to the fastest, the optimize mode and the
        kernels."""
        spread = self.source == "measure"
        wide = max(14, *(len(str(list(r.design.branch_sizes))) + 2 for r in self.rows))
        lines = [self.header(),
                 f"{'rank':<5}{'branch sizes':<{wide}}{'L':>3}{'params':>10}{'us':>11}"
                 + (f"{'IQR us':>9}" if spread else "") + f"{'vs fastest':>12}  mode   kernels"]
        best = self.fastest.seconds
        for i, r in enumerate(self.rows, 1):
            d = r.design
            lines.append(f"{i:<5}{list(d.branch_sizes)!s:<{wide}}{d.layers:>3}{d.params:>10,}"
                         f"{r.seconds * 1e6:>11.1f}"
                         + (f"{(r.iqr or 0.0) * 1e6:>9.1f}" if spread else "")
                         + f"{r.seconds / best:>11.2f}x  {r.mode:<6} {' '.join(r.kernels)}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def check_latency_request(source: str, size: int, batch: int, threads: int | None,
                          repeats: int, cpu_time: bool = False) -> None:
    """IGCError (one line) unless the latency options are within their limits."""
    if cpu_time and (source != "measure" or threads != 1):
        raise IGCError("CPU time (--cpu-time) needs --latency measure and --threads 1")
    check_choice(source, "latency source", LATENCY_SOURCES)
    check_int(size, "input size", 1, MAX_SIZE)
    check_int(batch, "batch", 1, MAX_BATCH)
    if threads is not None:
        check_int(threads, "threads", 1, MAX_THREADS)
    check_int(repeats, "repeats", 1, MAX_REPEATS)


def rank_latency(designs: Sequence[Design], source: str = "model", *, size: int = 32,
                 batch: int = 1, threads: int | None = 1, cost: CostModel | None = None,
                 repeats: int = 7, cpu_time: bool = False, notes: Sequence[str] = ()
                 ) -> LatencyRanking:
    """Rank ``designs`` (one width) by latency at ``batch`` images of ``size x size``.

    ``source``: ``"model"`` (``cost``, default the CPU's cost model) or ``"measure"``
    (``repeats`` interleaved rounds with ``threads`` torch threads; the previous count
    is restored; ``cpu_time`` counts this thread's CPU time instead of wall time, robust
    on a shared machine, one thread only). Sorting is stable: ties keep the order of
    ``designs``."""
    check_latency_request(source, size, batch, threads, repeats, cpu_time)
    designs = list(designs)
    if not designs:
        raise IGCError("no designs to rank")
    if len(designs) > MAX_CANDIDATES:
        raise IGCError(f"{len(designs):,} designs are more than {MAX_CANDIDATES} to rank")
    widths = {(d.channels, d.kernel_area) for d in designs}
    if len(widths) != 1:
        raise IGCError("rank designs of one width and kernel area at a time")
    channels, area = widths.pop()
    if source == "model":
        cost = cost or cost_model("cpu")
        rows = []
        for d in designs:
            seconds, kernels = predict(d, size, batch, cost)
            rows.append(LatencyRow(d, seconds, None, "auto", kernels))
        used, load = threads or torch.get_num_threads(), None
        extra = [] if native() is not None or "fused" not in MODES else [
            f"the fused kernel is not available here ({native_reason()}): designs are "
            "priced in their unfused forms"]
    else:
        with num_threads(threads) as used:
            rows, load, extra = _measure(designs, size, batch, repeats, cpu_time)
        cost = None
    rows.sort(key=lambda r: r.seconds)
    return LatencyRanking(channels, area, rows, source, size, batch, used, cost, load,
                          repeats if source == "measure" else None, [*notes, *extra])


def _measure(designs: list[Design], size: int, batch: int, repeats: int, cpu_time: bool
             ) -> tuple[list[LatencyRow], tuple[float, float], list[str]]:
    """Build, optimize and time every design in every applicable optimize mode."""
    channels = designs[0].channels
    if batch * channels * size * size > MAX_MEASURED_FLOATS:
        raise IGCError(f"batch {batch} x {channels} channels x {size}x{size} is more than "
                       f"{MAX_MEASURED_FLOATS:,} floats to time; use a smaller --size or "
                       "--batch")
    heavy = [d for d in designs if d.params > MAX_MEASURED_PARAMS]
    if heavy:
        raise IGCError(f"design {list(heavy[0].branch_sizes)} has {heavy[0].params:,} weights, "
                       f"more than {MAX_MEASURED_PARAMS:,} to build and time; fix --layers "
                       "or use --latency model")
    modes = [m for m in ("auto", "fused") if m in MODES]
    notes: list[str] = []
    x = torch.randn(batch, channels, size, size)
    calls: dict = {}
    kernels: dict[str, tuple[str, ...]] = {}
    for i, d in enumerate(designs):
        block = design_block(d)
        for mode in modes:
            try:
                fast = optimize(block, mode, example=x)
            except IGCError as exc:  # e.g. a form that does not take this design
                notes.append(f"{list(d.branch_sizes)} mode {mode}: {exc}")
                continue
            xin = x.contiguous(memory_format=fast.input_memory_format(batch))
            calls[f"{i}/{mode}"] = (lambda f=fast.model, xin=xin: f(xin))
            body = getattr(fast.model, "body", None)  # a FastChain, or a fused chain
            kernels[f"{i}/{mode}"] = tuple(f.form for f in getattr(body, "forms", []))
    before = os.getloadavg()[0]
    with torch.inference_mode():
        timing = time_interleaved(calls, repeats=repeats, warmup=2, min_sample_s=0.002,
                                  clock=time.thread_time if cpu_time else time.perf_counter)
    load = (before, os.getloadavg()[0])
    if cpu_time:
        notes.append("times are this thread's CPU time, not wall time")
    rows = []
    for i, d in enumerate(designs):
        mine = {k.split("/", 1)[1]: t for k, t in timing.items() if k.split("/", 1)[0] == str(i)}
        mode = min(mine, key=lambda m: mine[m].median)
        rows.append(LatencyRow(d, mine[mode].median, mine[mode].iqr, mode,
                               kernels[f"{i}/{mode}"]))
    return rows, load, notes


def design_by_latency(channels: int, kernel_area: int = 9, layers: int | None = None,
                      branch_size: int | None = None, channelwise: bool = False, *,
                      candidates: int = 20, source: str = "model", size: int = 32,
                      batch: int = 1, threads: int | None = 1, cost: CostModel | None = None,
                      repeats: int = 7, cpu_time: bool = False) -> LatencyRanking:
    """The designer's first ``candidates`` designs (fewest parameters first; see
    :func:`igc.sparsity.design` for ``layers``, ``branch_size``, ``channelwise``) ranked
    by latency (:func:`rank_latency`)."""
    check_int(candidates, "candidates", 1, MAX_CANDIDATES)
    check_latency_request(source, size, batch, threads, repeats, cpu_time)
    report = design(channels, kernel_area, layers, branch_size, channelwise, limit=candidates)
    return rank_latency(report.designs, source, size=size, batch=batch, threads=threads,
                        cost=cost, repeats=repeats, cpu_time=cpu_time,
                        notes=[report.note] if report.note else [])


__all__ = ["MAX_BATCH", "MAX_CANDIDATES", "MAX_MEASURED_FLOATS", "MAX_MEASURED_PARAMS",
           "MAX_REPEATS", "MAX_SIZE", "LatencyRanking", "LatencyRow", "check_latency_request",
           "design_block", "design_by_latency", "predict", "rank_latency"]
