"""The paper's design sweeps, defined once: Table 2's budgets, Figure 2's K sweep and
Figure 3's L sweep.

Both the analytic targets (widths, conditions, non-sparsity) and the empirical ones (the
networks trained for the same points) read them from here. Every block is a channel-wise
3x3 followed by ``L - 1`` group 1x1 convolutions; its parameters are eq. 7,
``Q = C (S K_1 + K_2 + ... + K_L)`` with ``K_1 = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from igc import create_model
from igc.errors import IGCError
from igc.sparsity import STRICT, KernelProduct, design, factorizations, nonzero_ratio

S = 9  # kernel area of a 3x3 convolution

#: Per-block budgets of Table 2: the IGCV2 blocks C144 (K 12,12), C256 (16,16), C361 (19,19).
TABLE2_BUDGETS = (9 * 144 + 2 * 144 * 12, 9 * 256 + 2 * 256 * 16, 9 * 361 + 2 * 361 * 19)
#: Table 2's widths beside those budgets: Xception (L = 2) and IGCV2 (L = 3).
TABLE2_WIDTHS = {2: (64, 96, 128), 3: (144, 256, 361)}
#: Our Figure 2 budget: one block of IGCV2 C64 with K = 8 (Table 4's first stage), 1,600.
FIGURE2_BUDGET = 9 * 64 + 2 * 64 * 8
#: How far from the budget a complementary width (C = K^(L-1)) may cost and still be used.
FIGURE2_SLACK = 0.2
#: Branch sizes swept per L in Figure 2 (panels a, b, c).
FIGURE2_PANELS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (3, (2, 4, 8, 12, 16)),
    (4, (2, 3, 4, 5, 6, 8)),
    (5, (2, 3, 4, 5, 6)),
)
#: Our Figure 3 budget: one block of Table 2's IGCV2 C256 (K 16,16), 10,496.
FIGURE3_BUDGET = TABLE2_BUDGETS[1]
FIGURE3_LAYERS = tuple(range(2, 10))
#: Zoo name of the configurable 8-layer IGCV2 network used for the Figure 2/3 sweeps.
SWEEP_MODEL = "igcv2_8l_c144"


# --------------------------------------------------------------------------- the designs

def _min_sum(channels: int, parts: int) -> tuple[int, ...] | None:
    """The factorization of ``channels`` into ``parts`` integers >= 2 with the smallest sum
    (the cheapest exact channel-wise design, eq. 7), or None."""
    best = None
    for sizes in factorizations(channels, parts):
        if best is None or sum(sizes) < sum(best):
            best = sizes
    return best


def widest_channelwise(budget: float, layers: int, area: int = S) -> int | None:
    """The widest ``C`` with a strictly complementary channel-wise design of ``layers``
    factors (a channel-wise 3x3 and ``layers - 1`` group 1x1) whose parameters, eq. 7, stay
    within ``budget``; None if there is none."""
    if layers < 2:
        raise IGCError("a channel-wise design needs at least 2 factors (L >= 2)")
    parts = layers - 1
    smallest = 2 ** parts
    for c in range(int(budget // (area + 2 * parts)), smallest - 1, -1):
        sizes = _min_sum(c, parts)
        if sizes is not None and c * (area + sum(sizes)) <= budget:
            return c
    return None


def balanced_width(budget: float, layers: int, area: int = S) -> float:
    """The real ``C`` whose balanced channel-wise block (``K = C^(1/(L-1))``) costs exactly
    ``budget``: ``S C + (L-1) C^(L/(L-1)) = budget`` (bisection)."""
    lo, hi = 1.0, budget / area
    for _ in range(100):
        mid = (lo + hi) / 2
        if mid * area + (layers - 1) * mid ** (layers / (layers - 1)) > budget:
            hi = mid
        else:
            lo = mid
    return lo


@cache
def channelwise_design(channels: int, layers: int):
    """The designer's best strictly complementary channel-wise design (a :class:`Design`)."""
    best = design(channels, S, layers=layers, channelwise=True).best
    if best.product.condition != STRICT:
        raise AssertionError(f"the designer gave a {best.product.condition} design for "
                             f"C={channels}, L={layers}")
    return best


# -------------------------------------------------------------------------- Figure 2 grid

@dataclass
class Figure2Point:
    """One bar of Figure 2: a channel-wise 3x3 and ``layers - 1`` group 1x1 of branch size
    ``branch`` at width ``width``; ``colour`` is the paper's (red: nearest complementary,
    blue: dense and redundant, green: sparse)."""

    layers: int
    branch: int
    width: int
    params: int
    condition: str
    min_paths: int
    max_paths: int
    connected_fraction: float
    span: int  # K^(L-1): the width at which the block is exactly complementary
    nonsparsity: float
    panel: str = ""
    colour: str = ""

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        """``K_2..K_L``: the branch sizes of the group 1x1 convolutions."""
        return (self.branch,) * (self.layers - 1)


def figure2_point(layers: int, branch: int, budget: int = FIGURE2_BUDGET) -> Figure2Point:
    """One bar of the Figure 2 sweep. The width is the complementary one,
    ``branch^(layers-1)``, when that block costs within :data:`FIGURE2_SLACK` of ``budget``;
    otherwise the multiple of ``branch`` whose block costs closest to ``budget``."""
    per_channel = S + (layers - 1) * branch
    span = branch ** (layers - 1)
    if abs(span * per_channel - budget) <= FIGURE2_SLACK * budget:
        c = span
    else:
        below = max(branch, int(budget / per_channel // branch) * branch)
        c = min((below, below + branch), key=lambda w: (abs(w * per_channel - budget), w))
    product = KernelProduct.from_branch_sizes(c, (1, *([branch] * (layers - 1))), S)
    conn = product.connectivity
    return Figure2Point(layers, branch, c, product.params, conn.condition, conn.min_paths,
                        conn.max_paths, conn.connected_fraction, span, nonzero_ratio(product))


def figure2_points(budget: int = FIGURE2_BUDGET,
                   panels: Sequence[tuple[int, Sequence[int]]] = FIGURE2_PANELS
                   ) -> list[Figure2Point]:
    """Every bar of every panel, with the paper's colour: red for the bar closest to the
    complementary condition (K^(L-1) nearest C), blue for other dense kernels, green for
    sparse ones."""
    out = []
    for panel, (layers, branches) in enumerate(panels):
        pts = [figure2_point(layers, k, budget) for k in branches]
        red = min(pts, key=lambda p: abs(math.log(p.span / p.width)))
        for p in pts:
            p.panel = "abc"[panel] if panel < 3 else str(panel)
            p.colour = ("red" if p is red else "green" if p.condition == "sparse" else "blue")
        out += pts
    return out


# ---------------------------------------------------------------------------- Figure 3

@dataclass
class Figure3Point:
    """One point of Figure 3: the widest balanced complementary channel-wise block of
    ``layers`` factors within the budget, and its non-sparsity ``Q / (S C^2)``."""

    layers: int
    width: int
    balanced_width: float
    branch_sizes: list[int]  # K_1..K_L, K_1 = 1
    params: int
    nonsparsity: float
    condition: str


def figure3_points(budget: int = FIGURE3_BUDGET,
                   layers: Sequence[int] = FIGURE3_LAYERS) -> list[Figure3Point]:
    """Per L: the widest balanced complementary channel-wise block within ``budget`` and
    its non-sparsity (non-zero weights over the dense kernel's ``S C^2``)."""
    out = []
    for n in layers:
        c = widest_channelwise(budget, n)
        if c is None:
            continue
        d = channelwise_design(c, n)
        out.append(Figure3Point(n, c, balanced_width(budget, n), list(d.branch_sizes),
                                d.params, nonzero_ratio(d.product), d.product.condition))
    return out


# ------------------------------------------------------------------- the sweep networks

def sweep_args(width: int, branch_sizes: Sequence[int]) -> dict[str, Any]:
    """Builder overrides of :data:`SWEEP_MODEL` for one sweep point (``K_2..K_L``)."""
    return {"width": int(width), "branch_sizes": [int(k) for k in branch_sizes]}


def sweep_model(width: int, branch_sizes: Sequence[int], num_classes: int = 10,
                in_chans: int = 3, **extra: Any):
    """The 8-layer IGCV2 network of a Figure 2/3 sweep point, from the zoo."""
    return create_model(SWEEP_MODEL, num_classes=num_classes, in_chans=in_chans,
                        **sweep_args(width, branch_sizes), **extra)
