"""The registry of reproduction targets: every figure and table of the IGCV2 paper that
``igc reproduce`` regenerates.

*Analytic* targets are exact and need no training: the mathematics of
:mod:`igc.sparsity` and parameter / multiply-add counts of modules built from the zoo.
*Empirical* targets train networks (:mod:`igc.reproduce.arms`) under a budget
(:mod:`igc.reproduce.budgets`: ``smoke``, ``short``, ``medium``, ``full``) and report
mean ± std over seeds beside the paper's CIFAR numbers, with the paper's claimed orderings
tested (:mod:`igc.reproduce.claims`).

Besides the names, ``all``, ``analytic`` and ``empirical`` select groups of targets; at a
budget that names its targets, ``all`` and ``empirical`` mean those.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from igc.errors import IGCError, unknown_name

ANALYTIC, EMPIRICAL = "analytic", "empirical"


@dataclass(frozen=True)
class Target:
    """One reproducible result of the paper."""

    name: str
    kind: str  # ANALYTIC or EMPIRICAL
    paper: str  # where it is in the paper, e.g. "Table 2" or "Figure 3"
    summary: str  # one line for ``igc reproduce --list``
    function: str = ""  # analytic: "module:function" computing the result
    args: tuple = ()  # its arguments

    def compute(self) -> object:
        """The analytic target's computed result (a dataclass)."""
        module, func = self.function.split(":")
        return getattr(importlib.import_module(module), func)(*self.args)

    def section(self):
        """The analytic target's rendered :class:`~igc.reproduce.report.Section`."""
        from igc.reproduce.render import render

        return render(self.compute())


_A, _C = "igc.reproduce.analytic", "igc.reproduce.counts:count_table"

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("width-vs-layers", ANALYTIC, "Figure 2(a), Figure 3 (width curve)",
           "widest channel-wise IGCV2 block per L at fixed per-block parameter budgets",
           f"{_A}:width_vs_layers"),
    Target("params-vs-layers", ANALYTIC, "eqs. 7, 10, 11, 14",
           "parameters of the best design per L at fixed widths, the eq. 10 bound, "
           "eq. 14's best L", f"{_A}:params_vs_layers"),
    Target("figure2-design", ANALYTIC, "Figure 2 (widths and conditions)",
           "the K/L sweep at a fixed budget: width per K, complementary / dense / sparse",
           f"{_A}:figure2_design"),
    Target("figure3-sparsity", ANALYTIC, "Figure 3 (width and non-sparsity curves)",
           "8-layer IGCV2 nets at one parameter count: width and non-sparsity versus L",
           f"{_A}:figure3_sparsity"),
    Target("table2-counts", ANALYTIC, "Table 2 (#Params / FLOPs column)",
           "per-block parameters and multiply-adds of Xception vs IGCV2 (8-layer nets)",
           _C, ("2",)),
    Target("table5-counts", ANALYTIC, "Table 5 (#Params / FLOPs column)",
           "per-block parameters and multiply-adds of IGCV1 vs IGCV2-I vs IGCV2-II",
           _C, ("5",)),
    Target("table3-counts", ANALYTIC, "Table 3 (#Params, FLOPs)",
           "Xception / IGCV1 / IGCV2* at depth 20, counted from the zoo's modules",
           _C, ("3",)),
    Target("table4-counts", ANALYTIC, "Table 4 (#Params, FLOPs)",
           "Xception C35 vs IGCV2 C64 at depths 8/20/26, counted from the zoo", _C, ("4",)),
    Target("table6-counts", ANALYTIC, "Table 6 (#Params, FLOPs)",
           "IGCV1 C48 vs IGCV2 C80 at depths 8/20/26, counted from the zoo", _C, ("6",)),
    Target("table7-counts", ANALYTIC, "Table 7 (#Params)",
           "IGCV2*-C416 (D20), the paper's small-model entry, counted from the zoo",
           _C, ("7",)),
    Target("table9-counts", ANALYTIC, "Tables 8-9 (#Params, FLOPs)",
           "ImageNet IGCV2-alpha vs MobileNetV1-alpha, counted from the zoo", _C, ("9",)),
    Target("table11-counts", ANALYTIC, "Tables 10-11 (#Params, FLOPs)",
           "ImageNet IGCV3-alpha vs MobileNetV2-alpha, counted from the zoo", _C, ("11",)),
    Target("table2", EMPIRICAL, "Table 2 (accuracy)",
           "train Xception C64/96/128 vs IGCV2 C144/256/361 (8-layer nets)"),
    Target("table5", EMPIRICAL, "Table 5 (accuracy)",
           "train IGCV1 vs IGCV2-I vs IGCV2-II (8-layer nets, three budgets)"),
    Target("figure2", EMPIRICAL, "Figure 2 (accuracy)",
           "train the K sweep at fixed L and budget (complementary / dense / sparse)"),
    Target("figure3", EMPIRICAL, "Figure 3 (accuracy curve)",
           "train the L sweep at one parameter count (balanced, complementary blocks)"),
    Target("table4", EMPIRICAL, "Tables 4 and 6 (accuracy)",
           "train Xception C35, IGCV1 C48, IGCV2 C64 and C80 at matched size (D8; "
           "D20/D26 at the full budget)"),
)}

GROUPS = {
    "all": [n for n in TARGETS],
    ANALYTIC: [n for n, t in TARGETS.items() if t.kind == ANALYTIC],
    EMPIRICAL: [n for n, t in TARGETS.items() if t.kind == EMPIRICAL],
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise unknown_name("reproduction target", name, [*TARGETS, *GROUPS]) from None


def resolve(names: Iterable[str], empirical: Sequence[str] | None = None) -> list[Target]:
    """Targets named by ``names`` (names or group names), in registry order, no repeats;
    ``empirical``: the empirical targets that the groups ``all`` and ``empirical`` stand
    for (a budget's own list; default every one)."""
    groups = dict(GROUPS)
    if empirical is not None:
        for name in empirical:
            get_target(name)
        groups["all"] = [*GROUPS[ANALYTIC], *empirical]
        groups[EMPIRICAL] = list(empirical)
    wanted: list[str] = []
    for name in names:
        key = name.strip().lower()
        members = groups[key] if key in groups else [get_target(key).name]
        wanted += [m for m in members if m not in wanted]
    if not wanted:
        raise IGCError("name a target to reproduce (see `igc reproduce --list`)")
    order = list(TARGETS)
    return [TARGETS[n] for n in sorted(wanted, key=order.index)]


def listing() -> str:
    """The text of ``igc reproduce --list``."""
    width = max(map(len, TARGETS))
    from igc.reproduce.budgets import budgets

    names = "|".join(budgets())
    lines = []
    for kind in (ANALYTIC, EMPIRICAL):
        lines.append(f"{kind} targets" + (" (exact, no training):" if kind == ANALYTIC
                                            else f" (training; --budget {names}):"))
        for t in TARGETS.values():
            if t.kind == kind:
                lines.append(f"  {t.name:<{width}}  {t.paper}: {t.summary}")
    lines.append("groups: all, analytic, empirical (at a budget that lists its targets, "
                 "all and empirical mean those)")
    return "\n".join(lines)
