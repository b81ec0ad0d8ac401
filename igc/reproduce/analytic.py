"""Analytic reproduction targets: exact, no training.

Two kinds:

* the mathematics of :mod:`igc.sparsity` (eqs. 6-14 of the IGCV2 paper): how wide a block
  can be for a parameter budget at each number of factors ``L`` (Figures 2 and 3), how many
  parameters the best design of each ``L`` costs against the eq. 10 bound and eq. 14's best
  ``L``, and which K/L combinations of Figure 2 are complementary, dense or sparse;
* parameter and multiply-add counts of modules: one block of the 8-layer networks (Tables 2
  and 5, per block at 32x32, as the paper counts them) and whole networks of the zoo
  (Tables 3, 4, 6, 7, 9, 11), each beside the paper's printed number with the difference.

Every function returns a :class:`~igc.reproduce.report.Section`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from igc.errors import IGCError
from igc.models.paper import paper_rows
from igc.reproduce.report import (
    BLUE,
    GREEN,
    RED,
    Plot,
    Section,
    Table,
    difference_bars,
    fmt_count,
    fmt_int,
    fmt_pct,
    relative,
)
from igc.sparsity import (
    STRICT,
    KernelProduct,
    best_layers,
    best_layers_real,
    design,
    factorizations,
    nonzero_ratio,
    params_bound,
)

S = 9  # kernel area of a 3x3 convolution

#: Per-block budgets of Table 2: the IGCV2 blocks C144 (K 12,12), C256 (16,16), C361 (19,19).
TABLE2_BUDGETS = (9 * 144 + 2 * 144 * 12, 9 * 256 + 2 * 256 * 16, 9 * 361 + 2 * 361 * 19)
#: Table 2's widths beside those budgets: Xception (L = 2) and IGCV2 (L = 3).
TABLE2_WIDTHS = {2: (64, 96, 128), 3: (144, 256, 361)}
#: Our Figure 2 budget: one block of IGCV2 C64 with K = 8 (Table 4's first stage), 1,600.
FIGURE2_BUDGET = 9 * 64 + 2 * 64 * 8
#: Branch sizes swept per L in Figure 2 (panels a, b, c).
#: How far from the budget a complementary width (C = K^(L-1)) may cost and still be used.
FIGURE2_SLACK = 0.2
FIGURE2_PANELS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (3, (2, 4, 8, 12, 16)),
    (4, (2, 3, 4, 5, 6, 8)),
    (5, (2, 3, 4, 5, 6)),
)
#: Our Figure 3 budget: one block of Table 2's IGCV2 C256 (K 16,16), 10,496.
FIGURE3_BUDGET = TABLE2_BUDGETS[1]
FIGURE3_LAYERS = tuple(range(2, 10))


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


def _ks(sizes: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, sizes)) + ")"


def width_vs_layers(budgets: Sequence[int] = TABLE2_BUDGETS,
                    layers: Sequence[int] = tuple(range(2, 10))) -> Section:
    """Figure 2(a)/3-style: for fixed per-block budgets, the widest IGCV2 block at each L."""
    rows, data = [], []
    for budget in budgets:
        for n in layers:
            c = widest_channelwise(budget, n)
            real = balanced_width(budget, n)
            entry = {"budget": budget, "layers": n, "width": c, "balanced_width": real}
            paper = None
            if n in TABLE2_WIDTHS and budget in TABLE2_BUDGETS:
                paper = TABLE2_WIDTHS[n][TABLE2_BUDGETS.index(budget)]
            entry["paper_width"] = paper
            if c is None:
                rows.append([fmt_int(budget), str(n), "—", f"{real:.1f}", "—", "—", "—",
                             "—" if paper is None else str(paper), "—"])
            else:
                d = channelwise_design(c, n)
                entry.update(branch_sizes=list(d.branch_sizes), params=d.params)
                rows.append([fmt_int(budget), str(n), str(c), f"{real:.1f}",
                             _ks(d.branch_sizes), fmt_int(d.params), d.product.condition,
                             "—" if paper is None else str(paper),
                             "—" if paper is None else f"{c - paper:+d}"])
            data.append(entry)
    table = Table(["budget Q", "L", "our width C", "balanced C (real)", "K_1..K_L",
                   "params (eq. 7)", "condition", "paper's C", "difference"], rows,
                  "Widest strictly complementary channel-wise block per L within each "
                  "per-block budget (3x3 channel-wise + L-1 group 1x1).")
    notes = []
    for budget in budgets:
        widths = [e for e in data if e["budget"] == budget and e["width"]]
        top = max(widths, key=lambda e: e["width"])
        notes.append(f"Budget {budget:,}: the width peaks at L = {top['layers']} "
                     f"(C = {top['width']}); the balanced real-valued width peaks at L = "
                     f"{max(widths, key=lambda e: e['balanced_width'])['layers']}.")
    notes.append("L = 2 is the Xception block (channel-wise 3x3 + dense 1x1). At L = 3 the "
                 "budgets of Table 2's IGCV2 blocks give back exactly the paper's widths 144, "
                 "256 and 361; at L = 2 the widest Xception blocks within the same budgets are "
                 "64, 98 and 125, where the paper paired 64, 96 and 128 (its budgets are "
                 "'≈', not equal).")

    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, budget in enumerate(budgets):
            pts = [e for e in data if e["budget"] == budget]
            colour = plt.get_cmap("tab10")(i)
            ax.plot([e["layers"] for e in pts], [e["balanced_width"] for e in pts], "--",
                    color=colour, lw=1)
            ax.plot([e["layers"] for e in pts if e["width"]],
                    [e["width"] for e in pts if e["width"]], "o-", color=colour,
                    label=f"Q = {budget:,}")
        for n, widths in TABLE2_WIDTHS.items():
            ax.scatter([n] * len(widths), widths, marker="x", color="k", zorder=4,
                       label="paper (Table 2)" if n == 2 else None)
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("width C")
        ax.set_title("Width vs L at a fixed per-block parameter budget\n"
                     "(solid: exact designs; dashed: balanced real-valued)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return Section(
        "width-vs-layers", "Width versus L at a fixed parameter budget (Figures 2-3)",
        "For a per-block parameter budget Q, the widest block made of a channel-wise 3x3 and "
        "L-1 group 1x1 convolutions that satisfies the complementary condition exactly "
        "(prod K_l = C, eq. 6), its cost by eq. 7 and the designer's branch sizes; beside it "
        "the real-valued width of the perfectly balanced block (K = C^(1/(L-1)), eq. 11). The "
        "budgets are the per-block counts of Table 2's three IGCV2 networks.",
        [table], notes, [Plot("width-vs-layers.png", "Width versus L at fixed budgets", draw)],
        {"budgets": list(budgets), "rows": data},
    )


def params_vs_layers(widths: Sequence[int] = (64, 256, 1024)) -> Section:
    """Parameters of the best exact design per L at fixed widths, against eq. 10's bound."""
    rows, data, summary = [], [], []
    for c in widths:
        omega = _prime_count(c)
        best_q = None
        for n in range(1, omega + 2):
            general = design(c, S, layers=n).best
            cw = channelwise_design(c, n) if n >= 2 else None
            bound = params_bound(c, n, S)
            cw_bound = params_bound(c, n, S, channelwise=True) if n >= 2 else None
            entry = {"width": c, "layers": n, "branch_sizes": list(general.branch_sizes),
                     "params": general.params, "bound": bound,
                     "channelwise_sizes": list(cw.branch_sizes) if cw else None,
                     "channelwise_params": cw.params if cw else None,
                     "channelwise_bound": cw_bound}
            data.append(entry)
            if best_q is None or general.params < best_q[1]:
                best_q = (n, general.params)
            rows.append([str(c), str(n), _ks(general.branch_sizes), fmt_int(general.params),
                         fmt_int(bound), f"{general.params / bound:.3f}",
                         _ks(cw.branch_sizes) if cw else "—",
                         fmt_int(cw.params) if cw else "—",
                         fmt_int(cw_bound) if cw_bound else "—"])
        real, integer = best_layers_real(c, S), best_layers(c, S)
        summary.append([str(c), f"{real:.2f}", str(integer), str(best_q[0]),
                        fmt_int(best_q[1]), fmt_int(params_bound(c, integer, S))])
        for e in data:
            if e["width"] == c:
                e["eq14_real"], e["eq14_best"], e["argmin_exact"] = real, integer, best_q[0]
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
    for row in summary:
        if row[2] != row[3]:
            notes.append(f"C = {row[0]}: the cheapest exact design has L = {row[3]}, while "
                         f"the bound is smallest at L = {row[2]} (eq. 14 is a continuous "
                         f"approximation).")

    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, c in enumerate(widths):
            colour = plt.get_cmap("tab10")(i)
            pts = [e for e in data if e["width"] == c]
            ls = [e["layers"] for e in pts]
            ax.plot(ls, [e["params"] for e in pts], "o-", color=colour, label=f"C = {c}")
            ax.plot(ls, [e["bound"] for e in pts], "--", color=colour, lw=1)
            ax.axvline(best_layers_real(c, S), color=colour, ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("parameters per block Q")
        ax.set_title("Parameters vs L at a fixed width (solid: best exact design; dashed: "
                     "eq. 10 bound;\ndotted: eq. 14's L = ln(SC))", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return Section(
        "params-vs-layers", "Parameters versus L at a fixed width (eqs. 7, 10, 14)",
        "For fixed widths C, the cheapest strictly complementary design with L factors (the "
        "designer's choice), its parameter count Q (eq. 7) against the lower bound "
        "Q >= C L (SC)^(1/L) (eq. 10) and the best L of eq. 14, L = ln(SC).",
        [table, best_table], notes,
        [Plot("params-vs-layers.png", "Parameters versus L at fixed widths", draw)],
        {"rows": data},
    )


def _prime_count(n: int) -> int:
    count, p = 0, 2
    while p * p <= n:
        while n % p == 0:
            n, count = n // p, count + 1
        p += 1
    return count + (n > 1)


# -------------------------------------------------------------------------- Figure 2 grid

def figure2_point(layers: int, branch: int, budget: int = FIGURE2_BUDGET) -> dict:
    """One bar of the Figure 2 sweep: a channel-wise 3x3 and ``layers - 1`` group 1x1 of
    branch size ``branch``. The width is the complementary one, ``branch^(layers-1)``, when
    that block costs within :data:`FIGURE2_SLACK` of ``budget``; otherwise the multiple of
    ``branch`` whose block costs closest to ``budget``."""
    per_channel = S + (layers - 1) * branch
    span = branch ** (layers - 1)
    if abs(span * per_channel - budget) <= FIGURE2_SLACK * budget:
        c = span
    else:
        below = max(branch, int(budget / per_channel // branch) * branch)
        c = min((below, below + branch), key=lambda w: (abs(w * per_channel - budget), w))
    product = KernelProduct.from_branch_sizes(c, (1, *([branch] * (layers - 1))), S)
    conn = product.connectivity
    return {"layers": layers, "branch": branch, "width": c, "params": product.params,
            "condition": conn.condition, "min_paths": conn.min_paths,
            "max_paths": conn.max_paths, "connected_fraction": conn.connected_fraction,
            "span": span, "nonsparsity": nonzero_ratio(product)}


def figure2_points(budget: int = FIGURE2_BUDGET,
                   panels: Sequence[tuple[int, Sequence[int]]] = FIGURE2_PANELS) -> list[dict]:
    """Every bar of every panel, with the paper's colour: red for the bar closest to the
    complementary condition (K^(L-1) nearest C), blue for other dense kernels, green for
    sparse ones."""
    out = []
    for panel, (layers, branches) in enumerate(panels):
        pts = [figure2_point(layers, k, budget) for k in branches]
        red = min(pts, key=lambda p: abs(math.log(p["span"] / p["width"])))
        for p in pts:
            p["panel"] = "abc"[panel] if panel < 3 else str(panel)
            p["colour"] = ("red" if p is red else
                           "green" if p["condition"] == "sparse" else "blue")
        out += pts
    return out


def figure2_design(budget: int = FIGURE2_BUDGET) -> Section:
    pts = figure2_points(budget)
    rows = [[f"({p['panel']}) L={p['layers']}", str(p["branch"]), str(p["width"]),
             fmt_int(p["params"]), f"{p['span']:,}", p["condition"],
             f"{p['min_paths']}..{p['max_paths']}", f"{p['connected_fraction']:.3f}",
             p["colour"]] for p in pts]
    table = Table(["panel", "K", "width C", "params per block", "K^(L-1)", "condition",
                   "paths per pair", "connected fraction", "paper's colour"], rows,
                  f"Channel-wise 3x3 + (L-1) group 1x1 with branch size K at about "
                  f"Q = {budget:,} per block (see the text for the width rule).")

    def draw(plt, path: Path) -> None:
        panels = sorted({p["panel"] for p in pts})
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
        colours = {"red": RED, "blue": BLUE, "green": GREEN}
        for ax, panel in zip(axes, panels):
            sub = [p for p in pts if p["panel"] == panel]
            xs = range(len(sub))
            ax.bar(xs, [p["width"] for p in sub], color=[colours[p["colour"]] for p in sub])
            ax.set_xticks(list(xs), [f"K={p['branch']}\nC={p['width']}" for p in sub],
                          fontsize=7)
            ax.set_title(f"({panel}) L = {sub[0]['layers']}", fontsize=9)
            ax.set_ylabel("width C")
        fig.suptitle(f"Figure 2 sweep at Q = {budget:,} per block (red: nearest complementary; "
                     "blue: dense, redundant; green: sparse)", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return Section(
        "figure2-design", "The K/L sweep of Figure 2: widths and conditions",
        "Figure 2 trains 8-layer networks whose blocks are a channel-wise 3x3 and L-1 group "
        "1x1 convolutions with branch size K, all at about the same number of parameters. The "
        "paper does not print its budget; ours is one block of IGCV2 C64 with K = 8 "
        f"(Table 4's first stage), {budget:,} parameters. For each (L, K) the width is the "
        "complementary one, C = K^(L-1), when that block costs within "
        f"{FIGURE2_SLACK:.0%} of the budget, otherwise the multiple of K whose block costs "
        "closest to the budget; the connectivity of the "
        "composed kernel is computed exactly (number of paths between every input and output "
        "channel). `igc reproduce figure2` trains these networks.",
        [table],
        ["The paper's colours: red = the block closest to the complementary condition, blue "
         "= dense kernels that violate it (more than one path: redundancy), green = sparse "
         "kernels (some input/output pairs unconnected), sparser for smaller K."],
        [Plot("figure2-design.png", "Figure 2's sweep: width per K and L", draw)],
        {"budget": budget, "points": pts},
    )


# ---------------------------------------------------------------------------- Figure 3

def figure3_points(budget: int = FIGURE3_BUDGET,
                   layers: Sequence[int] = FIGURE3_LAYERS) -> list[dict]:
    """Per L: the widest balanced complementary channel-wise block within ``budget`` and
    its non-sparsity (non-zero weights over the dense kernel's ``S C^2``)."""
    out = []
    for n in layers:
        c = widest_channelwise(budget, n)
        if c is None:
            continue
        d = channelwise_design(c, n)
        out.append({"layers": n, "width": c, "balanced_width": balanced_width(budget, n),
                    "branch_sizes": list(d.branch_sizes),
                    "params": d.params, "nonsparsity": nonzero_ratio(d.product),
                    "condition": d.product.condition})
    return out


def _unimodal(values: Sequence[float], peak: bool) -> bool:
    """Rises then falls (``peak``) or falls then rises, allowing flat steps."""
    sign = 1 if peak else -1
    i = max(range(len(values)), key=lambda j: sign * values[j])
    up = all(sign * (values[j + 1] - values[j]) >= 0 for j in range(i))
    down = all(sign * (values[j + 1] - values[j]) <= 0 for j in range(i, len(values) - 1))
    return up and down


def figure3_sparsity(budget: int = FIGURE3_BUDGET) -> Section:
    pts = figure3_points(budget)
    net_params = _eight_layer_params(pts)
    rows = []
    for p in pts:
        rows.append([str(p["layers"]), str(p["width"]), f"{p['balanced_width']:.1f}",
                     _ks(p["branch_sizes"]),
                     fmt_int(p["params"]), f"{p['nonsparsity']:.5f}",
                     fmt_int(net_params.get(p["layers"])), p["condition"]])
    table = Table(["L", "width C", "balanced C (real)", "K_1..K_L", "params per block",
                   "non-sparsity Q/(S C^2)",
                   "8-layer net params (10 classes)", "condition"], rows,
                  f"Widest strictly complementary channel-wise block per L within "
                  f"Q = {budget:,} per block.")
    widths = [p["width"] for p in pts]
    dens = [p["nonsparsity"] for p in pts]
    peak = pts[widths.index(max(widths))]["layers"]
    low = pts[dens.index(min(dens))]["layers"]
    notes = [
        f"The paper says width is concave in L and non-sparsity convex. Ours: the width "
        f"peaks at L = {peak} and is {'unimodal' if _unimodal(widths, True) else 'not unimodal'}"
        f" in L; the non-sparsity is lowest at L = {low} and is "
        f"{'unimodal' if _unimodal(dens, False) else 'not unimodal'}. Integer widths make the "
        "curves jagged where a width has no exact factorization into L-1 factors.",
        "The paper does not print Figure 3's budget or widths; ours is one block of Table 2's "
        f"IGCV2 C256 ({budget:,} parameters), so L = 3 gives back C = 256.",
    ]
    if not net_params:
        notes.append("Whole-network counts need the model zoo (igc.models.cifar); not "
                     "available when this was generated.")

    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ls = [p["layers"] for p in pts]
        ax.plot(ls, widths, "o-", color=BLUE, label="width C")
        ax.set_xlabel("L (number of group convolutions)")
        ax.set_ylabel("width C", color=BLUE)
        ax2 = ax.twinx()
        ax2.plot(ls, dens, "s--", color=GREEN, label="non-sparsity")
        ax2.set_ylabel("non-sparsity (non-zeros / dense kernel)", color=GREEN)
        ax2.set_yscale("log")
        ax.axvline(peak, color="k", ls="--", lw=1)
        ax.set_title(f"Figure 3 (analytic part): width and non-sparsity vs L at "
                     f"Q = {budget:,} per block", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return Section(
        "figure3-sparsity", "Width and non-sparsity versus L (Figure 3)",
        "Figure 3 compares 8-layer networks whose blocks are a channel-wise 3x3 and L-1 "
        "balanced group 1x1 convolutions, all at about the same number of parameters. For "
        "each L the designer gives the widest strictly complementary block within the "
        "budget (branch sizes as balanced as integers allow); its non-sparsity is the "
        "number of non-zero weights over the size of the composed dense kernel, S C^2. "
        "`igc reproduce figure3` trains these networks.",
        [table], notes, [Plot("figure3-sparsity.png", "Width and non-sparsity versus L", draw)],
        {"budget": budget, "points": pts, "net_params": net_params},
    )


def _eight_layer_params(pts: Sequence[dict]) -> dict[int, int]:
    """Whole-network parameters of each 8-layer net (zoo), or {} without the zoo."""
    try:
        from igc.reproduce.empirical import sweep_model
    except ImportError:
        return {}
    out = {}
    for p in pts:
        try:
            model = sweep_model(p["width"], p["branch_sizes"][1:], num_classes=10, in_chans=1)
        except (ImportError, IGCError):
            return {}
        out[p["layers"]] = sum(t.numel() for t in model.parameters())
    return out


# ------------------------------------------------------------- counting modules: blocks

def _block_specs(table: str) -> list[tuple[str, str, int, tuple[int, ...]]]:
    """The blocks of Table 2 or 5: (zoo name, paper's network, width, K_1..K_L), K_1 being
    the 3x3's channels per branch (IGCV1 and IGCV2-I: 2) and IGCV1's 1x1 having 2 branches
    of C/2 channels."""
    out = []
    for row in paper_rows(table=table, dataset="cifar10"):
        name, c = row["model"], row["width"]
        family = name.split("_")[0]
        if family == "xception":
            sizes = (1, c)
        elif family == "igcv1":
            sizes = (2, c // 2)
        else:
            k = {144: 12, 256: 16, 361: 19, 98: 7, 162: 9, 242: 11, 100: 10, 169: 13}[c]
            sizes = (2 if family == "igcv2i" else 1, k, k)
        out.append((name, row["network"], c, sizes))
    return out


def _block_table(table: str, title: str, intro: str) -> Section:
    rows, data, points = [], [], []
    for name, network, c, sizes in _block_specs(table):
        weights, macs = block_counts(name)
        formula = c * S * sizes[0] + c * sum(sizes[1:])
        paper = paper_rows(model=name, table=table, dataset="cifar10")[0]
        dp, dm = relative(weights, paper["params"]), relative(macs, paper["macs"])
        cond = KernelProduct.from_branch_sizes(c, sizes, S).condition
        rows.append([network, str(c), _ks(sizes), fmt_int(formula), fmt_int(weights),
                     f"≈{paper['params']:,}", fmt_pct(dp), fmt_count(macs),
                     f"≈{fmt_count(paper['macs'])}", fmt_pct(dm), cond])
        data.append({"model": name, "network": network, "width": c,
                     "branch_sizes": list(sizes), "formula": formula, "params": weights,
                     "macs": macs, "paper_params": paper["params"], "paper_macs": paper["macs"],
                     "params_diff_pct": dp, "macs_diff_pct": dm, "condition": cond})
        points.append((network, dp, dm))
    table_md = Table(["network", "C", "K_1..K_L", "eq. 7", "ours: weights", "paper",
                      "diff", "ours: mult-adds at 32x32", "paper", "diff", "condition"], rows,
                     f"Table {table}: one block of the zoo's 8-layer network: its weights "
                     f"(convolutions only, no BatchNorm) and multiply-adds on a 32x32 map, "
                     f"counted from the module by igc.analysis.count; eq. 7 is the formula.")
    exact = [d for d in data if d["params"] == d["formula"]]
    worst = max(data, key=lambda d: abs(d["params_diff_pct"]))
    notes = [
        f"Our module counts equal eq. 7 for {len(exact)} of {len(data)} blocks"
        + (", and multiply-adds are exactly 1,024 x weights (every convolution keeps the "
           "32x32 map)." if all(d["macs"] == 1024 * d["params"] for d in data) else "."),
        f"The paper prints one rounded '≈' cell per group; the largest gap to it is "
        f"{worst['network']} at {worst['params_diff_pct']:+.1f}% — every block is within "
        f"{math.ceil(max(abs(d['params_diff_pct']) for d in data))}% of its group's cell.",
    ]
    return Section(f"table{table}-counts", title, intro, [table_md], notes,
                   [Plot(f"table{table}-counts.png", f"Table {table}: ours vs paper, per block",
                         difference_bars(points, f"Table {table}, one block: ours against "
                                         f"the paper's '≈' cells"))],
                   {"rows": data})


def table2_counts() -> Section:
    return _block_table(
        "2", "Table 2: per-block parameters and FLOPs (Xception vs IGCV2)",
        "Table 2's '#Params / FLOPs' column is per block: Xception C64 has 9x64 + 64^2 = "
        "4,672 (≈4,700) weights and IGCV2 C144 9x144 + 2x144x12 = 4,752; FLOPs are "
        "multiply-adds of one block on a 32x32 map. Ours are counted from the block modules.")


def table5_counts() -> Section:
    return _block_table(
        "5", "Table 5: per-block parameters and FLOPs (IGCV1 vs IGCV2-I vs IGCV2-II)",
        "IGCV1: group 3x3 with branches of 2 channels + group 1x1 with 2 branches; IGCV2-I: "
        "the same group 3x3 (K_1 = 2) then two group 1x1 (K = 7/9/11); IGCV2-II: channel-wise "
        "3x3 then two group 1x1 (K = 10/13/16). Counts per block, multiply-adds at 32x32.")


# --------------------------------------------------------- counting modules: the zoo

#: How precisely each table prints its counts: (params unit, multiply-adds unit). A count is
#: "within rounding" when it is within half a unit of the printed number.
PRINT_UNITS = {
    "3": (10_000, 1_000_000),  # 0.44 (x M), 0.67 (x 10^8)
    "4": (1_000, 100_000),  # 0.056 (x M), 0.095 (x 10^8)
    "6": (1_000, 100_000),  # 0.046 (x M), 1.00 (x 10^7)
    "7": (10_000, None),  # 0.65 (M)
    "9": (100_000, 1_000_000),  # 4.2 (M), 569 (M)
    "11": (100_000, 1_000_000),  # 3.4 (M), 300 (M)
}


def _zoo():
    try:
        from igc.analysis.count import paper_counts
        from igc.models.registry import list_models
    except ImportError as exc:
        raise IGCError(f"this target counts networks of the model zoo, which is not "
                       f"available ({exc.name} is missing)") from None
    return list_models, paper_counts


@cache
def zoo_counts(model: str) -> dict:
    """Counts of zoo network ``model`` by :func:`igc.analysis.count.paper_counts`: the whole
    network as built (``params``, ``macs``) and the way the paper's table counts
    (``params_counted``, ``macs_counted``, ``convention``). The network is built on the
    ``meta`` device: shapes only, no weights to initialise, no arithmetic."""
    import torch

    from igc.models.registry import create_model

    _, paper_counts = _zoo()
    with torch.device("meta"):
        net = create_model(model)
    return paper_counts(model, net)


@cache
def block_counts(model: str) -> tuple[int, int]:
    """``(weights, multiply-adds at 32x32)`` of the first block of zoo network ``model``,
    counted by :func:`igc.analysis.count.paper_block_counts` as Tables 2 and 5 count."""
    import torch

    try:
        from igc.analysis.count import paper_block_counts
        from igc.layers.blocks import IGCBlock
        from igc.models.registry import create_model
    except ImportError as exc:
        raise IGCError(f"this target counts blocks of the model zoo, which is not "
                       f"available ({exc.name} is missing)") from None
    with torch.device("meta"):
        net = create_model(model)
    block = next(m for m in net.modules() if isinstance(m, IGCBlock))
    weights, macs = paper_block_counts(block, 32)
    return int(weights), int(macs)


def _within(ours: int, paper: int | None, unit: int | None) -> str:
    if paper is None or unit is None:
        return "—"
    return "yes" if abs(ours - paper) <= unit / 2 else "no"


def _zoo_table(table: str, title: str, intro: str, extra_notes: Sequence[str] = ()) -> Section:
    list_models, _ = _zoo()
    known = set(list_models())
    unit_p, unit_m = PRINT_UNITS[table]
    rows, data, missing = [], [], []
    seen: dict[str, dict] = {}
    for row in paper_rows(table=table):
        name = row.get("model")
        if not name or "params" not in row or row["dataset"] == "tiny-imagenet":
            continue
        if name not in known:
            missing.append(name)
            continue
        if name in seen:  # one count per network; later rows only add their labels
            seen[name]["networks"].append(row["network"])
            continue
        counts = zoo_counts(name)
        params, macs = counts["params_counted"], counts["macs_counted"]
        paper_m = row.get("macs")
        entry = {"model": name, "networks": [row["network"]], "depth": row.get("depth"),
                 "dataset": row["dataset"], "params": params, "macs": macs,
                 "all_params": counts["params"], "convention": counts["convention"],
                 "paper_params": row["params"], "paper_macs": paper_m,
                 "params_diff_pct": relative(params, row["params"]),
                 "macs_diff_pct": relative(macs, paper_m),
                 "params_within": _within(params, row["params"], unit_p),
                 "macs_within": _within(macs, paper_m, unit_m)}
        seen[name] = entry
        data.append(entry)
    for e in data:
        rows.append([" / ".join(dict.fromkeys(e["networks"])), f"`{e['model']}`",
                     "—" if e["depth"] is None else str(e["depth"]),
                     fmt_count(e["paper_params"]), fmt_count(e["params"]),
                     fmt_count(e["all_params"]),
                     fmt_pct(e["params_diff_pct"]), e["params_within"],
                     fmt_count(e["paper_macs"]), fmt_count(e["macs"]),
                     fmt_pct(e["macs_diff_pct"]), e["macs_within"]])
    conventions = sorted({e["convention"] for e in data})
    table_md = Table(["network (paper)", "zoo name", "D", "paper params", "ours",
                      "ours, all parameters", "diff", "within rounding", "paper mult-adds",
                      "ours", "diff", "within rounding"],
                     rows, f"Table {table}: ours counted from the zoo's modules by "
                     f"igc.analysis.count.paper_counts, the way the paper counts "
                     f"({'; '.join(conventions)}); 'all parameters' adds BatchNorm, biases "
                     f"and the classifier.")
    ok_p = sum(e["params_within"] == "yes" for e in data)
    ok_m = sum(e["macs_within"] == "yes" for e in data)
    n_m = sum(e["macs_within"] != "—" for e in data)
    notes = [f"Parameters within the paper's printed rounding for {ok_p} of {len(data)} "
             f"networks; multiply-adds for {ok_m} of {n_m}." + (
                 " 'Within rounding' means within half a unit of the last printed digit."
             )]
    outside = []
    for e in data:
        parts = [f"params {fmt_pct(e['params_diff_pct'])}" if e["params_within"] == "no"
                 else "", f"multiply-adds {fmt_pct(e['macs_diff_pct'])}"
                 if e["macs_within"] == "no" else ""]
        if any(parts):
            outside.append(f"`{e['model']}` ({', '.join(p for p in parts if p)})")
    if outside:
        notes.append("Our count **differs** from the paper's beyond its printed rounding for: "
                     + "; ".join(outside) + ".")
    if missing:
        notes.append("Not in the zoo when this was generated: "
                     + ", ".join(f"`{m}`" for m in dict.fromkeys(missing)) + ".")
    notes += list(extra_notes)
    bars = [(e["model"], e["params_diff_pct"], e["macs_diff_pct"]) for e in data]

    def half_unit(unit: int | None, paper: int | None) -> float | None:
        return None if unit is None or not paper else 50.0 * unit / paper

    band = ([half_unit(unit_p, e["paper_params"]) for e in data],
            [half_unit(unit_m, e["paper_macs"]) for e in data])
    plots = [Plot(f"table{table}-counts.png", f"Table {table}: our counts against the paper's",
                  difference_bars(bars, f"Table {table}: ours against the paper's printed "
                                        f"counts", band))] if data else []
    return Section(f"table{table}-counts", title, intro, [table_md], notes, plots,
                   {"rows": data, "missing": missing})


def table3_counts() -> Section:
    return _zoo_table("3", "Table 3: Xception vs IGCV1 vs IGCV2* at depth 20 (counts)",
                      "The networks of Table 1 at D = 20 with CIFAR-100's 100-way classifier "
                      "on 32x32 inputs. The paper gives one count per network for CIFAR-100 "
                      "and Tiny ImageNet; we compare the CIFAR-100 network.")


def table4_counts() -> Section:
    return _zoo_table("4", "Table 4: Xception C35 vs IGCV2 C64 at depths 8, 20, 26 (counts)",
                      "IGCV2 (C64) uses K_s = 8, 16, 32 in the three stages (8^2 = 64, 16^2 = "
                      "128, 32^2 = 1024: only the first stage is exactly complementary).")


def table6_counts() -> Section:
    return _zoo_table("6", "Table 6: IGCV1 C48 vs IGCV2 C80 at depths 8, 20, 26 (counts)",
                      "IGCV2 (C80) uses K_s = 10, 16, 20 in the three stages; multiply-adds "
                      "in Table 6 are printed in units of 10^7.")


def table7_counts() -> Section:
    return _zoo_table("7", "Table 7: IGCV2*-C416, the small-model entry (counts)",
                      "Table 7 prints only the parameters of IGCV2*-C416 (D = 20) beside other "
                      "authors' networks.")


def table9_counts() -> Section:
    return _zoo_table("9", "Tables 8-9: IGCV2-alpha vs MobileNetV1-alpha on ImageNet (counts)",
                      "The networks of Table 8 at 224x224 with a 1000-way classifier; five "
                      "1024->1024 blocks (SPEC: the extracted 'x10' is read as 5, which "
                      "reproduces MobileNetV1's structure).")


def table11_counts() -> Section:
    return _zoo_table("11", "Tables 10-11: IGCV3-alpha vs MobileNetV2-alpha on ImageNet (counts)",
                      "The networks of Table 10 at 224x224 with a 1000-way classifier.",
                      ["Cross-check: the independent PyTorch port pytorchcv counts IGCV3-1.0 "
                       "at 3,491,688 parameters and 340.79M multiply-adds, beside the paper's "
                       "3.5M / 320M."])
