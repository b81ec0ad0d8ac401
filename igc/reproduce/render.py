"""Markdown of the analytic targets: each computed result (:mod:`~igc.reproduce.analytic`,
:mod:`~igc.reproduce.counts`) becomes a :class:`~igc.reproduce.report.Section` with its
tables, notes, plots (:mod:`~igc.reproduce.plots`) and JSON data.

Each analytic target (:mod:`igc.reproduce.targets`) names its renderer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import igc.reproduce.plots as plots
from igc.reproduce.analytic import Figure2Design, Figure3Sparsity, ParamsVsLayers, WidthVsLayers
from igc.reproduce.counts import PRINT_UNITS, BlockRow, CountResult, ZooRow
from igc.reproduce.report import (
    Plot,
    Section,
    Table,
    as_record,
    fmt_count,
    fmt_int,
    fmt_pct,
)
from igc.reproduce.sweeps import FIGURE2_SLACK


def _ks(sizes: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, sizes)) + ")"


def _dash(value: object) -> str:
    return "—" if value is None else str(value)


def width_vs_layers(r: WidthVsLayers) -> Section:
    rows = []
    for p in r.rows:
        if p.width is None:
            rows.append([fmt_int(p.budget), str(p.layers), "—", f"{p.balanced_width:.1f}", "—",
                         "—", "—", _dash(p.paper_width), "—"])
        else:
            rows.append([fmt_int(p.budget), str(p.layers), str(p.width),
                         f"{p.balanced_width:.1f}", _ks(p.branch_sizes or ()),
                         fmt_int(p.params), str(p.condition), _dash(p.paper_width),
                         "—" if p.paper_width is None else f"{p.width - p.paper_width:+d}"])
    table = Table(["budget Q", "L", "our width C", "balanced C (real)", "K_1..K_L",
                   "params (eq. 7)", "condition", "paper's C", "difference"], rows,
                  "Widest strictly complementary channel-wise block per L within each "
                  "per-block budget (3x3 channel-wise + L-1 group 1x1).")
    notes = [f"Budget {budget:,}: the width peaks at L = {top.layers} (C = {top.width}); the "
             f"balanced real-valued width peaks at L = {balanced}."
             for budget, top, balanced in r.peaks()]
    notes.append("L = 2 is the Xception block (channel-wise 3x3 + dense 1x1). At L = 3 the "
                 "budgets of Table 2's IGCV2 blocks give back exactly the paper's widths 144, "
                 "256 and 361; at L = 2 the widest Xception blocks within the same budgets are "
                 "64, 98 and 125, where the paper paired 64, 96 and 128 (its budgets are "
                 "'≈', not equal).")
    return Section(
        "width-vs-layers", "Width versus L at a fixed parameter budget (Figures 2-3)",
        "For a per-block parameter budget Q, the widest block made of a channel-wise 3x3 and "
        "L-1 group 1x1 convolutions that satisfies the complementary condition exactly "
        "(prod K_l = C, eq. 6), its cost by eq. 7 and the designer's branch sizes; beside it "
        "the real-valued width of the perfectly balanced block (K = C^(1/(L-1)), eq. 11). The "
        "budgets are the per-block counts of Table 2's three IGCV2 networks.",
        [table], notes,
        [Plot("width-vs-layers.png", "Width versus L at fixed budgets",
              plots.width_vs_layers(r))],
        as_record(r),
    )


def params_vs_layers(r: ParamsVsLayers) -> Section:
    rows = [[str(p.width), str(p.layers), _ks(p.branch_sizes), fmt_int(p.params),
             fmt_int(p.bound), f"{p.params / p.bound:.3f}",
             _ks(p.channelwise_sizes) if p.channelwise_sizes else "—",
             fmt_int(p.channelwise_params) if p.channelwise_sizes else "—",
             fmt_int(p.channelwise_bound) if p.channelwise_bound else "—"] for p in r.rows]
    summary = [[str(b.width), f"{b.real:.2f}", str(b.integer), str(b.argmin_exact),
                fmt_int(b.argmin_params), fmt_int(b.bound_at_integer)] for b in r.best]
    table = Table(["C", "L", "best K_1..K_L", "params Q (eq. 7)", "bound C L (SC)^(1/L)",
                   "Q / bound", "channel-wise K", "channel-wise Q", "channel-wise bound"],
                  rows, "Cheapest strictly complementary design per L (K_1 is the 3x3's "
                  "branch size; channel-wise: K_1 = 1), S = 9.")
    best_table = Table(["C", "eq. 14: ln(SC)", "integer L with the smallest bound",
                        "L of the cheapest exact design", "its params", "bound at that L"],
                       summary, "The best number of factors (eq. 14) against the designs.")
    notes = ["Exact designs meet the bound only when S K_1 = K_2 = ... = K_L has an integer "
             "solution; Q / bound shows how close the integers come. Among exact designs "
             "several L can tie (e.g. every channel-wise design of C = 64 from L = 4 to 7 "
             "costs 1,344); the table lists the designer's choice, the most balanced."]
    notes += [f"C = {b.width}: the cheapest exact design has L = {b.argmin_exact}, while the "
              f"bound is smallest at L = {b.integer} (eq. 14 is a continuous approximation)."
              for b in r.best if b.integer != b.argmin_exact]
    return Section(
        "params-vs-layers", "Parameters versus L at a fixed width (eqs. 7, 10, 14)",
        "For fixed widths C, the cheapest strictly complementary design with L factors (the "
        "designer's choice), its parameter count Q (eq. 7) against the lower bound "
        "Q >= C L (SC)^(1/L) (eq. 10) and the best L of eq. 14, L = ln(SC).",
        [table, best_table], notes,
        [Plot("params-vs-layers.png", "Parameters versus L at fixed widths",
              plots.params_vs_layers(r))],
        {"rows": as_record(r.rows)},
    )


def figure2_design(r: Figure2Design) -> Section:
    rows = [[f"({p.panel}) L={p.layers}", str(p.branch), str(p.width), fmt_int(p.params),
             f"{p.span:,}", p.condition, f"{p.min_paths}..{p.max_paths}",
             f"{p.connected_fraction:.3f}", p.colour] for p in r.points]
    table = Table(["panel", "K", "width C", "params per block", "K^(L-1)", "condition",
                   "paths per pair", "connected fraction", "paper's colour"], rows,
                  f"Channel-wise 3x3 + (L-1) group 1x1 with branch size K at about "
                  f"Q = {r.budget:,} per block (see the text for the width rule).")
    return Section(
        "figure2-design", "The K/L sweep of Figure 2: widths and conditions",
        "Figure 2 trains 8-layer networks whose blocks are a channel-wise 3x3 and L-1 group "
        "1x1 convolutions with branch size K, all at about the same number of parameters. The "
        "paper does not print its budget; ours is one block of IGCV2 C64 with K = 8 "
        f"(Table 4's first stage), {r.budget:,} parameters. For each (L, K) the width is the "
        "complementary one, C = K^(L-1), when that block costs within "
        f"{FIGURE2_SLACK:.0%} of the budget, otherwise the multiple of K whose block costs "
        "closest to the budget; the connectivity of the "
        "composed kernel is computed exactly (number of paths between every input and output "
        "channel). `igc reproduce figure2` trains these networks.",
        [table],
        ["The paper's colours: red = the block closest to the complementary condition, blue "
         "= dense kernels that violate it (more than one path: redundancy), green = sparse "
         "kernels (some input/output pairs unconnected), sparser for smaller K."],
        [Plot("figure2-design.png", "Figure 2's sweep: width per K and L",
              plots.figure2_design(r))],
        as_record(r),
    )


def figure3_sparsity(r: Figure3Sparsity) -> Section:
    rows = [[str(p.layers), str(p.width), f"{p.balanced_width:.1f}", _ks(p.branch_sizes),
             fmt_int(p.params), f"{p.nonsparsity:.5f}", fmt_int(r.net_params.get(p.layers)),
             p.condition] for p in r.points]
    table = Table(["L", "width C", "balanced C (real)", "K_1..K_L", "params per block",
                   "non-sparsity Q/(S C^2)",
                   "8-layer net params (10 classes)", "condition"], rows,
                  f"Widest strictly complementary channel-wise block per L within "
                  f"Q = {r.budget:,} per block.")
    notes = [
        f"The paper says width is concave in L and non-sparsity convex. Ours: the width "
        f"peaks at L = {r.width_peak} and is "
        f"{'unimodal' if r.width_unimodal else 'not unimodal'} in L; the non-sparsity is "
        f"lowest at L = {r.sparsest} and is "
        f"{'unimodal' if r.nonsparsity_unimodal else 'not unimodal'}. Integer widths make the "
        "curves jagged where a width has no exact factorization into L-1 factors.",
        "The paper does not print Figure 3's budget or widths; ours is one block of Table 2's "
        f"IGCV2 C256 ({r.budget:,} parameters), so L = 3 gives back C = 256.",
    ]
    return Section(
        "figure3-sparsity", "Width and non-sparsity versus L (Figure 3)",
        "Figure 3 compares 8-layer networks whose blocks are a channel-wise 3x3 and L-1 "
        "balanced group 1x1 convolutions, all at about the same number of parameters. For "
        "each L the designer gives the widest strictly complementary block within the "
        "budget (branch sizes as balanced as integers allow); its non-sparsity is the "
        "number of non-zero weights over the size of the composed dense kernel, S C^2. "
        "`igc reproduce figure3` trains these networks.",
        [table], notes,
        [Plot("figure3-sparsity.png", "Width and non-sparsity versus L",
              plots.figure3_sparsity(r))],
        as_record(r),
    )


# ----------------------------------------------------------------------- counted tables

def _block_section(r: CountResult) -> Section:
    table, data = r.spec.table, [d for d in r.rows if isinstance(d, BlockRow)]
    rows = [[d.network, str(d.width), _ks(d.branch_sizes), fmt_int(d.formula),
             fmt_int(d.params), f"≈{d.paper_params:,}", fmt_pct(d.params_diff_pct),
             fmt_count(d.macs), f"≈{fmt_count(d.paper_macs)}", fmt_pct(d.macs_diff_pct),
             d.condition] for d in data]
    table_md = Table(["network", "C", "K_1..K_L", "eq. 7", "ours: weights", "paper",
                      "diff", "ours: mult-adds at 32x32", "paper", "diff", "condition"], rows,
                     f"Table {table}: one block of the zoo's 8-layer network: its weights "
                     f"(convolutions only, no BatchNorm) and multiply-adds on a 32x32 map, "
                     f"counted from the module by igc.analysis.count; eq. 7 is the formula.")
    exact = [d for d in data if d.params == d.formula]
    worst = max(data, key=lambda d: abs(d.params_diff_pct or 0.0))
    notes = [
        f"Our module counts equal eq. 7 for {len(exact)} of {len(data)} blocks"
        + (", and multiply-adds are exactly 1,024 x weights (every convolution keeps the "
           "32x32 map)." if all(d.macs == 1024 * d.params for d in data) else "."),
        f"The paper prints one rounded '≈' cell per group; the largest gap to it is "
        f"{worst.network} at {worst.params_diff_pct:+.1f}% — every block is within "
        f"{math.ceil(max(abs(d.params_diff_pct or 0.0) for d in data))}% of its group's cell.",
    ]
    points = [(d.network, d.params_diff_pct, d.macs_diff_pct) for d in data]
    return Section(f"table{table}-counts", r.spec.title, r.spec.intro, [table_md], notes,
                   [Plot(f"table{table}-counts.png", f"Table {table}: ours vs paper, per block",
                         plots.difference_bars(points, f"Table {table}, one block: ours "
                                               f"against the paper's '≈' cells"))],
                   {"rows": as_record(data)})


def _zoo_section(r: CountResult) -> Section:
    table = r.spec.table
    data = [d for d in r.rows if isinstance(d, ZooRow)]
    unit_p, unit_m = PRINT_UNITS[table]
    rows = [[" / ".join(dict.fromkeys(e.networks)), f"`{e.model}`", _dash(e.depth),
             fmt_count(e.paper_params), fmt_count(e.params), fmt_count(e.all_params),
             fmt_pct(e.params_diff_pct), e.params_within, fmt_count(e.paper_macs),
             fmt_count(e.macs), fmt_pct(e.macs_diff_pct), e.macs_within] for e in data]
    conventions = sorted({e.convention for e in data})
    table_md = Table(["network (paper)", "zoo name", "D", "paper params", "ours",
                      "ours, all parameters", "diff", "within rounding", "paper mult-adds",
                      "ours", "diff", "within rounding"],
                     rows, f"Table {table}: ours counted from the zoo's modules by "
                     f"igc.analysis.count.paper_counts, the way the paper counts "
                     f"({'; '.join(conventions)}); 'all parameters' adds BatchNorm, biases "
                     f"and the classifier.")
    ok_p = sum(e.params_within == "yes" for e in data)
    ok_m = sum(e.macs_within == "yes" for e in data)
    n_m = sum(e.macs_within != "—" for e in data)
    notes = [f"Parameters within the paper's printed rounding for {ok_p} of {len(data)} "
             f"networks; multiply-adds for {ok_m} of {n_m}. 'Within rounding' means within "
             f"half a unit of the last printed digit."]
    outside = []
    for e in data:
        parts = [f"params {fmt_pct(e.params_diff_pct)}" if e.params_within == "no" else "",
                 f"multiply-adds {fmt_pct(e.macs_diff_pct)}" if e.macs_within == "no" else ""]
        if any(parts):
            outside.append(f"`{e.model}` ({', '.join(p for p in parts if p)})")
    if outside:
        notes.append("Our count **differs** from the paper's beyond its printed rounding for: "
                     + "; ".join(outside) + ".")
    if r.missing:
        notes.append("Not in the zoo when this was generated: "
                     + ", ".join(f"`{m}`" for m in dict.fromkeys(r.missing)) + ".")
    notes += list(r.spec.notes)
    bars = [(e.model, e.params_diff_pct, e.macs_diff_pct) for e in data]

    def half_unit(unit: int | None, paper: int | None) -> float | None:
        return None if unit is None or not paper else 50.0 * unit / paper

    band = ([half_unit(unit_p, e.paper_params) for e in data],
            [half_unit(unit_m, e.paper_macs) for e in data])
    drawn = [Plot(f"table{table}-counts.png", f"Table {table}: our counts against the paper's",
                  plots.difference_bars(bars, f"Table {table}: ours against the paper's "
                                              f"printed counts", band))] if data else []
    return Section(f"table{table}-counts", r.spec.title, r.spec.intro, [table_md], notes,
                   drawn, {"rows": as_record(data), "missing": r.missing})


def count_table(r: CountResult) -> Section:
    return _block_section(r) if r.spec.kind == "block" else _zoo_section(r)

