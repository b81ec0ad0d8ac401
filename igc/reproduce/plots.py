"""Every plot of ``igc reproduce``, one drawer per kind.

Each function takes a target's computed result and returns ``draw(plt)``, which draws one
figure with matplotlib (``plt`` from :func:`igc.viz.pyplot`) and returns it; a
:class:`~igc.reproduce.report.Plot` carries it until the section is written, and
:func:`igc.reproduce.report.draw_plots` lays it out and saves it as a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from igc.reproduce.registry import PLOTS
from igc.reproduce.sweeps import TABLE2_WIDTHS, S
from igc.sparsity import best_layers_real

#: Colours of the paper's Figure 2: red = (nearly) complementary, blue = dense with more than
#: one path (redundant), green = sparse (some input-output pairs not connected).
RED, BLUE, GREEN = "#d62728", "#1f77b4", "#2ca02c"
FIGURE2_COLOURS = {"red": RED, "blue": BLUE, "green": GREEN}
FAMILY_COLOURS = {"xception": "#7f7f7f", "igcv1": "#ff7f0e", "igcv2": BLUE,
                  "igcv2i": "#9467bd", "igcv2ii": BLUE, "igcv2star": "#17becf"}

Drawer = Callable[[Any], Any]  # draw(plt) -> a matplotlib Figure


# ---------------------------------------------------------------------------- analytic

def width_vs_layers(result) -> Drawer:
    """Width per L at each budget: exact designs (solid), balanced real width (dashed),
    Table 2's widths (crosses). ``result``: an ``analytic.WidthVsLayers``."""
    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, budget in enumerate(result.budgets):
            pts = [p for p in result.rows if p.budget == budget]
            colour = plt.get_cmap("tab10")(i)
            ax.plot([p.layers for p in pts], [p.balanced_width for p in pts], "--",
                    color=colour, lw=1)
            ax.plot([p.layers for p in pts if p.width], [p.width for p in pts if p.width],
                    "o-", color=colour, label=f"Q = {budget:,}")
        for n, widths in TABLE2_WIDTHS.items():
            ax.scatter([n] * len(widths), widths, marker="x", color="k", zorder=4,
                       label="paper (Table 2)" if n == 2 else None)
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("width C")
        ax.set_title("Width vs L at a fixed per-block parameter budget\n"
                     "(solid: exact designs; dashed: balanced real-valued)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    return draw


def params_vs_layers(result) -> Drawer:
    """Parameters per L at fixed widths against the eq. 10 bound and eq. 14's L.
    ``result``: an ``analytic.ParamsVsLayers``."""
    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, c in enumerate(result.widths):
            colour = plt.get_cmap("tab10")(i)
            pts = [p for p in result.rows if p.width == c]
            ls = [p.layers for p in pts]
            ax.plot(ls, [p.params for p in pts], "o-", color=colour, label=f"C = {c}")
            ax.plot(ls, [p.bound for p in pts], "--", color=colour, lw=1)
            ax.axvline(best_layers_real(c, S), color=colour, ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("parameters per block Q")
        ax.set_title("Parameters vs L at a fixed width (solid: best exact design; dashed: "
                     "eq. 10 bound;\ndotted: eq. 14's L = ln(SC))", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        return fig

    return draw


def figure2_design(result) -> Drawer:
    """Width per K in each panel of Figure 2, in the paper's colours.
    ``result``: an ``analytic.Figure2Design``."""
    pts = result.points

    def draw(plt) -> Any:
        panels = sorted({p.panel for p in pts})
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
        for ax, panel in zip(axes, panels):
            sub = [p for p in pts if p.panel == panel]
            xs = range(len(sub))
            ax.bar(xs, [p.width for p in sub], color=[FIGURE2_COLOURS[p.colour] for p in sub])
            ax.set_xticks(list(xs), [f"K={p.branch}\nC={p.width}" for p in sub], fontsize=7)
            ax.set_title(f"({panel}) L = {sub[0].layers}", fontsize=9)
            ax.set_ylabel("width C")
        fig.suptitle(f"Figure 2 sweep at Q = {result.budget:,} per block (red: nearest "
                     "complementary; blue: dense, redundant; green: sparse)", fontsize=8)
        return fig

    return draw


def figure3_sparsity(result) -> Drawer:
    """Width and non-sparsity versus L (Figure 3's analytic part).
    ``result``: an ``analytic.Figure3Sparsity``."""
    pts = result.points

    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ls = [p.layers for p in pts]
        ax.plot(ls, [p.width for p in pts], "o-", color=BLUE, label="width C")
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("width C", color=BLUE)
        ax2 = ax.twinx()
        ax2.plot(ls, [p.nonsparsity for p in pts], "s--", color=GREEN, label="non-sparsity")
        ax2.set_ylabel("non-sparsity (non-zeros / dense kernel)", color=GREEN)
        ax2.set_yscale("log")
        ax.axvline(result.width_peak, color="k", ls="--", lw=1)
        ax.set_title(f"Figure 3 (analytic part): width and non-sparsity vs L at "
                     f"Q = {result.budget:,} per block", fontsize=9)
        ax.grid(alpha=0.3)
        return fig

    return draw


def difference_bars(rows: list[tuple[str, float | None, float | None]], title: str,
                    band: tuple[list[float | None], list[float | None]] | None = None
                    ) -> Drawer:
    """For each network, our count's difference to the paper's in percent, as horizontal
    bars (parameters and multiply-adds); ``band`` gives per row the half-width in percent
    of the paper's printed rounding, drawn as a grey tick."""

    def draw(plt) -> Any:
        n = len(rows)
        fig, ax = plt.subplots(figsize=(7.2, 0.9 + 0.38 * n))
        ys = list(range(n))[::-1]
        h = 0.38
        for offset, index, colour, label in ((h / 2, 1, BLUE, "parameters"),
                                             (-h / 2, 2, "#ff7f0e", "multiply-adds")):
            vals = [r[index] for r in rows]
            pos = [y + offset for y, v in zip(ys, vals) if v is not None]
            ax.barh(pos, [v for v in vals if v is not None], height=h, color=colour,
                    label=label)
            if band is not None:
                for y, w in zip(ys, band[index - 1]):
                    if w is not None:
                        ax.plot([-w, w], [y + offset] * 2, color="0.35", lw=3, alpha=0.35,
                                solid_capstyle="butt")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(ys, [r[0] for r in rows], fontsize=7)
        ax.set_xlabel("ours - paper (% of the paper's number)"
                      + ("; grey: the paper's printed rounding" if band else ""))
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        return fig

    return draw


# --------------------------------------------------------------------------- empirical

def _pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    front, best = [], -math.inf
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto(results: Sequence, title: str, data_name: str) -> Drawer:
    """Accuracy (mean ± std over seeds) against parameters, with the Pareto front.
    ``results``: ``empirical.ArmResult`` s."""
    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.6, 4.6))
        done = [r for r in results if r.mean is not None and r.params]
        for r in done:
            colour = FAMILY_COLOURS.get(r.arm.family, "k")
            ax.errorbar(r.params, r.mean, yerr=r.std or 0, fmt="o", color=colour, capsize=3)
            ax.annotate(r.arm.label, (r.params, r.mean), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        front = _pareto([(r.params, r.mean) for r in done])
        if len(front) > 1:
            ax.plot(*zip(*front), "--", color="0.5", lw=1, label="Pareto front")
            ax.legend(fontsize=8)
        xs = [r.params for r in done]
        if xs and max(xs) > 5 * min(xs):
            ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.set_xlabel("parameters (whole network, ours)")
        ax.set_ylabel(f"top-1 on {data_name} (%), mean ± std")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        return fig

    return draw


def bars(results: Sequence, title: str, data_name: str) -> Drawer:
    """Figure 2 style: accuracy bars per K, in the paper's colours, per panel."""
    def draw(plt) -> Any:
        panels = list(dict.fromkeys(r.arm.group for r in results))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8),
                                 squeeze=False)
        for ax, panel in zip(axes[0], panels):
            sub = [r for r in results if r.arm.group == panel]
            xs = list(range(len(sub)))
            ys = [r.mean if r.mean is not None else 0 for r in sub]
            ax.bar(xs, ys, yerr=[r.std or 0 for r in sub], capsize=3,
                   color=[FIGURE2_COLOURS[r.arm.extra.get("colour", "blue")] for r in sub])
            ax.set_xticks(xs, [f"K={r.arm.extra['branch']}\nC={r.arm.extra['width']}"
                               for r in sub], fontsize=7)
            done = [y for y in ys if y]
            if done:
                ax.set_ylim(max(0, min(done) - 5), min(100, max(done) + 3))
            ax.set_title(panel, fontsize=9)
            ax.set_ylabel(f"top-1 on {data_name} (%)")
        fig.suptitle(title, fontsize=9)
        return fig

    return draw


def curve(results: Sequence, title: str, data_name: str) -> Drawer:
    """Figure 3 style: accuracy and width versus L."""
    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        done = [r for r in results if r.mean is not None]
        ax.errorbar([r.arm.extra["layers"] for r in done], [r.mean for r in done],
                    yerr=[r.std or 0 for r in done], fmt="o-", color=RED, capsize=3,
                    label="accuracy")
        ax.set_xlabel("L")
        ax.set_ylabel(f"top-1 on {data_name} (%)", color=RED)
        ax2 = ax.twinx()
        ax2.plot([r.arm.extra["layers"] for r in results],
                 [r.arm.extra["width"] for r in results], "s--", color=BLUE, label="width")
        ax2.set_ylabel("width C", color=BLUE)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        return fig

    return draw


def learning_curves(results: Sequence, title: str, data_name: str) -> Drawer:
    """Test top-1 after each epoch, mean over seeds, one line per network."""
    def draw(plt) -> Any:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, r in enumerate(results):
            points = r.curve()
            if points:
                ax.plot(range(1, len(points) + 1), points, "o-", ms=3,
                        color=plt.get_cmap("tab10")(i % 10), label=r.arm.label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"test top-1 on {data_name} (%), mean over seeds")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return fig

    return draw


#: The drawer of each empirical plot kind (``Target.plot``, one of :data:`PLOTS`).
EMPIRICAL = dict(zip(PLOTS, (pareto, bars, curve), strict=True))
