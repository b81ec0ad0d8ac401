"""Analytic reproduction targets from the mathematics of :mod:`igc.sparsity`: exact, no
training, no modules (except the whole-network counts of Figure 3).

Each function computes one target and returns a dataclass; :mod:`igc.reproduce.render`
turns it into markdown and :mod:`igc.reproduce.plots` draws it.

* :func:`width_vs_layers`: how wide a block can be for a parameter budget at each number of
  factors ``L`` (Figures 2 and 3, eqs. 6-7, 11);
* :func:`params_vs_layers`: the parameters of the best design of each ``L`` against the
  eq. 10 bound and eq. 14's best ``L``;
* :func:`figure2_design`: which K/L combinations of Figure 2 are complementary, dense or
  sparse;
* :func:`figure3_sparsity`: width and non-sparsity versus ``L`` at one budget (Figure 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from igc.reproduce.sweeps import (
    FIGURE2_BUDGET,
    FIGURE3_BUDGET,
    TABLE2_BUDGETS,
    TABLE2_WIDTHS,
    Figure2Point,
    Figure3Point,
    S,
    balanced_width,
    channelwise_design,
    figure2_points,
    figure3_points,
    sweep_model,
    widest_channelwise,
)
from igc.sparsity import best_layers, best_layers_real, design, params_bound

# ------------------------------------------------------------------- width versus L


@dataclass
class WidthPoint:
    """The widest exact channel-wise block of ``layers`` factors within ``budget``."""

    budget: int
    layers: int
    width: int | None  # None: no exact design fits
    balanced_width: float  # eq. 11's real-valued width at exactly the budget
    paper_width: int | None  # Table 2's width at this budget and L, if it has one
    branch_sizes: list[int] | None = field(default=None, metadata={"omit_none": True})
    params: int | None = field(default=None, metadata={"omit_none": True})
    condition: str | None = field(default=None, metadata={"json": False})


@dataclass
class WidthVsLayers:
    """Figure 2(a)/3-style: the widest block per L for fixed per-block budgets."""

    budgets: list[int]
    rows: list[WidthPoint]

    def peaks(self) -> list[tuple[int, WidthPoint, int]]:
        """Per budget: the widest exact point and the L where the balanced width peaks."""
        out = []
        for budget in self.budgets:
            pts = [p for p in self.rows if p.budget == budget and p.width]
            top = max(pts, key=lambda p: p.width or 0)
            out.append((budget, top, max(pts, key=lambda p: p.balanced_width).layers))
        return out


def width_vs_layers(budgets: Sequence[int] = TABLE2_BUDGETS,
                    layers: Sequence[int] = tuple(range(2, 10))) -> WidthVsLayers:
    """For fixed per-block budgets, the widest IGCV2 block at each L (eq. 7 within Q)."""
    rows = []
    for budget in budgets:
        for n in layers:
            c = widest_channelwise(budget, n)
            paper = None
            if n in TABLE2_WIDTHS and budget in TABLE2_BUDGETS:
                paper = TABLE2_WIDTHS[n][TABLE2_BUDGETS.index(budget)]
            point = WidthPoint(budget, n, c, balanced_width(budget, n), paper)
            if c is not None:
                d = channelwise_design(c, n)
                point.branch_sizes, point.params = list(d.branch_sizes), d.params
                point.condition = d.product.condition
            rows.append(point)
    return WidthVsLayers(list(budgets), rows)


# ---------------------------------------------------------------- parameters versus L

@dataclass
class ParamsPoint:
    """The cheapest exact design of ``layers`` factors at ``width`` (general and
    channel-wise) against the eq. 10 bound."""

    width: int
    layers: int
    branch_sizes: list[int]
    params: int
    bound: float
    channelwise_sizes: list[int] | None
    channelwise_params: int | None
    channelwise_bound: float | None
    eq14_real: float = 0.0  # ln(SC), eq. 14
    eq14_best: int = 0  # the integer L with the smallest bound
    argmin_exact: int = 0  # the L of the cheapest exact design


@dataclass
class BestLayers:
    """Eq. 14's best L at one width against the cheapest exact design."""

    width: int
    real: float
    integer: int
    argmin_exact: int
    argmin_params: int
    bound_at_integer: float


@dataclass
class ParamsVsLayers:
    widths: list[int]
    rows: list[ParamsPoint]
    best: list[BestLayers]


def params_vs_layers(widths: Sequence[int] = (64, 256, 1024)) -> ParamsVsLayers:
    """Parameters of the best exact design per L at fixed widths, against eq. 10's bound."""
    rows, best = [], []
    for c in widths:
        mine = []
        for n in range(1, _prime_count(c) + 2):
            general = design(c, S, layers=n).best
            cw = channelwise_design(c, n) if n >= 2 else None
            mine.append(ParamsPoint(
                c, n, list(general.branch_sizes), general.params, params_bound(c, n, S),
                list(cw.branch_sizes) if cw else None, cw.params if cw else None,
                params_bound(c, n, S, channelwise=True) if n >= 2 else None))
        cheapest = min(mine, key=lambda p: p.params)  # the first L on ties
        real, integer = best_layers_real(c, S), best_layers(c, S)
        for p in mine:
            p.eq14_real, p.eq14_best, p.argmin_exact = real, integer, cheapest.layers
        rows += mine
        best.append(BestLayers(c, real, integer, cheapest.layers, cheapest.params,
                               params_bound(c, integer, S)))
    return ParamsVsLayers(list(widths), rows, best)


def _prime_count(n: int) -> int:
    """The number of prime factors of ``n`` with multiplicity (the most factors >= 2)."""
    count, p = 0, 2
    while p * p <= n:
        while n % p == 0:
            n, count = n // p, count + 1
        p += 1
    return count + (n > 1)


# ----------------------------------------------------------------------- Figure 2 grid

@dataclass
class Figure2Design:
    budget: int
    points: list[Figure2Point]


def figure2_design(budget: int = FIGURE2_BUDGET) -> Figure2Design:
    """The K/L sweep of Figure 2 at ``budget`` parameters per block: widths, conditions."""
    return Figure2Design(budget, figure2_points(budget))


# ---------------------------------------------------------------------------- Figure 3

@dataclass
class Figure3Sparsity:
    budget: int
    points: list[Figure3Point]
    net_params: dict[int, int]  # L -> parameters of the whole 8-layer network (10 classes)

    @property
    def width_peak(self) -> int:
        """The L of the widest block."""
        return max(self.points, key=lambda p: p.width).layers

    @property
    def sparsest(self) -> int:
        """The L of the lowest non-sparsity."""
        return min(self.points, key=lambda p: p.nonsparsity).layers

    @property
    def width_unimodal(self) -> bool:
        return unimodal([p.width for p in self.points], peak=True)

    @property
    def nonsparsity_unimodal(self) -> bool:
        return unimodal([p.nonsparsity for p in self.points], peak=False)


def unimodal(values: Sequence[float], peak: bool) -> bool:
    """Rises then falls (``peak``) or falls then rises, allowing flat steps."""
    sign = 1 if peak else -1
    i = max(range(len(values)), key=lambda j: sign * values[j])
    up = all(sign * (values[j + 1] - values[j]) >= 0 for j in range(i))
    down = all(sign * (values[j + 1] - values[j]) <= 0 for j in range(i, len(values) - 1))
    return up and down


def figure3_sparsity(budget: int = FIGURE3_BUDGET) -> Figure3Sparsity:
    """Figure 3's analytic part: per L the widest block within ``budget``, its
    non-sparsity, and the parameters of the whole 8-layer network built from the zoo."""
    import torch

    pts = figure3_points(budget)
    net_params = {}
    for p in pts:
        with torch.device("meta"):
            model = sweep_model(p.width, p.branch_sizes[1:], num_classes=10, in_chans=1)
        net_params[p.layers] = sum(t.numel() for t in model.parameters())
    return Figure3Sparsity(budget, pts, net_params)
