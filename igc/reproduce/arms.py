"""The networks each empirical target trains (its *arms*), described as data.

:data:`SPECS` names every empirical target: its title and introduction, where its
networks come from (the paper's rows of a table, or a sweep of :mod:`igc.reproduce.sweeps`),
which of the paper's accuracy columns it shows and how it is drawn. :func:`arms_for` lists
a target's arms at a budget (which depths, groups of rows and panels the budget keeps, and
the stem stride of the 8-layer networks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from igc.models.paper import paper_rows
from igc.reproduce.budgets import Budget
from igc.reproduce.sweeps import (
    FIGURE2_BUDGET,
    FIGURE2_PANELS,
    SWEEP_MODEL,
    figure2_points,
    figure3_points,
    sweep_args,
)


@dataclass(frozen=True)
class Arm:
    """One network of a comparison."""

    id: str  # unique within its target, safe as a folder name (e.g. "igcv2_8l_c144")
    label: str  # the paper's name, e.g. "IGCV2 (C144)"
    model: str  # zoo name
    family: str
    group: str = ""  # arms compared with each other (a row group of the paper's table)
    model_args: tuple[tuple[str, Any], ...] = ()
    paper_model: str | None = None  # the paper_results name, when the paper reports it
    paper_table: str | None = None
    info: tuple[tuple[str, Any], ...] = ()  # extra columns (L, K, colour, ...)

    @property
    def args(self) -> dict[str, Any]:
        """The builder overrides as a plain dict (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args}

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.info)


def _frozen(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


def _eight_layer_args(budget: Budget, **args: Any) -> tuple[tuple[str, Any], ...]:
    if budget.stem_stride_8l != 1:
        args["stem_stride"] = budget.stem_stride_8l
    return _frozen(args)


def _family(name: str) -> str:
    return name.split("_")[0]


def _paper_arms(table: str, budget: Budget) -> list[Arm]:
    """The networks of Table 2 or 5 (8-layer), grouped by the paper's per-block budget."""
    seen, arms, kept = set(), [], []
    for row in paper_rows(table=table):
        name = row.get("model")
        if not name or name in seen or row["dataset"] == "tiny-imagenet":
            continue
        seen.add(name)
        label = row["network"] if "(" in row["network"] else f"{row['network']} (C{row['width']})"
        group = f"≈{row['params']:,} / block"
        if group not in kept:
            if budget.groups is not None and len(kept) >= budget.groups:
                continue
            kept.append(group)
        arms.append(Arm(name, label, name, _family(name), group, _eight_layer_args(budget),
                        name, table))
    return arms


def table2_arms(budget: Budget) -> list[Arm]:
    return _paper_arms("2", budget)


def table5_arms(budget: Budget) -> list[Arm]:
    return _paper_arms("5", budget)


def table4_arms(budget: Budget) -> list[Arm]:
    """Tables 4 and 6 at the budget's depths: Xception C35, IGCV2 C64, IGCV1 C48, IGCV2 C80."""
    arms = []
    for depth in budget.depths:
        for table in ("4", "6"):
            for row in paper_rows(table=table, dataset="cifar100"):
                if row.get("depth") == depth and row.get("model"):
                    args = _frozen({"stem_stride": budget.stem_stride}
                                   if budget.stem_stride != 1 else {})
                    arms.append(Arm(row["model"], f"{row['network']} D{depth}", row["model"],
                                    _family(row["model"]), f"D = {depth}", args, row["model"],
                                    table, (("depth", depth),)))
    return arms


def figure2_arms(budget: Budget) -> list[Arm]:
    """The K sweep of Figure 2: the budget's first panels (L = 3, 4, 5)."""
    arms = []
    for p in figure2_points(FIGURE2_BUDGET, FIGURE2_PANELS[:budget.figure2_panels]):
        sizes = list(p.branch_sizes)
        info = {**asdict(p), "branch_sizes": tuple(sizes)}
        arms.append(Arm(f"L{p.layers}-K{p.branch}", f"L={p.layers} K={p.branch} C={p.width}",
                        SWEEP_MODEL, "igcv2", f"({p.panel}) L = {p.layers}",
                        _eight_layer_args(budget, **sweep_args(p.width, sizes)),
                        info=tuple(sorted(info.items()))))
    return arms


def figure3_arms(budget: Budget) -> list[Arm]:
    """The L sweep of Figure 3 at the budget's per-block parameters."""
    arms = []
    for p in figure3_points(budget.figure3_budget):
        info = {**asdict(p), "branch_sizes": tuple(p.branch_sizes)}
        arms.append(Arm(f"L{p.layers}", f"L={p.layers} C={p.width}", SWEEP_MODEL, "igcv2",
                        f"Q ≈ {budget.figure3_budget:,} / block",
                        _eight_layer_args(budget, **sweep_args(p.width, p.branch_sizes[1:])),
                        info=tuple(sorted(info.items()))))
    return arms


@dataclass(frozen=True)
class EmpiricalSpec:
    """One empirical target: what it trains and how the document presents it."""

    target: str
    title: str
    intro: str
    arms: Callable[[Budget], list[Arm]]
    paper_datasets: tuple[str, ...]  # the paper's accuracy columns shown beside ours
    plot: str  # "pareto" | "bars" | "curve"


SPECS: dict[str, EmpiricalSpec] = {s.target: s for s in (
    EmpiricalSpec(
        "table2", "Table 2: Xception vs IGCV2, 8-layer networks (accuracy)",
        "Six blocks at one resolution between a 3x3 stem and the classifier; each pair has "
        "about the same number of parameters per block.", table2_arms,
        ("cifar10", "cifar100"), "pareto"),
    EmpiricalSpec(
        "table5", "Table 5: IGCV1 vs IGCV2-I vs IGCV2-II, 8-layer networks (accuracy)",
        "IGCV2-I keeps IGCV1's group 3x3 (K_1 = 2) and splits the 1x1 into two; IGCV2-II "
        "uses a channel-wise 3x3 and two balanced group 1x1 (the paper's recommended "
        "design).", table5_arms, ("cifar10", "cifar100"), "pareto"),
    EmpiricalSpec(
        "figure2", "Figure 2: the K sweep at fixed L and budget (accuracy)",
        "8-layer IGCV2 networks with a channel-wise 3x3 and L-1 group 1x1 of branch size K "
        f"at about the same number of parameters per block ({FIGURE2_BUDGET:,}); widths and "
        "conditions as in `figure2-design`. Red: (nearly) complementary; blue: dense, "
        "redundant; green: sparse. The paper plots Figure 2 without printing numbers.",
        figure2_arms, (), "bars"),
    EmpiricalSpec(
        "figure3", "Figure 3: the L sweep at one parameter count (accuracy)",
        "8-layer IGCV2 networks, channel-wise 3x3 and L-1 balanced group 1x1, the widest "
        "strictly complementary block per L within the budget (as in `figure3-sparsity`). "
        "The paper plots Figure 3 without printing numbers.", figure3_arms, (), "curve"),
    EmpiricalSpec(
        "table4", "Tables 4 and 6: Xception, IGCV1 and IGCV2 at matched size (accuracy)",
        "The residual networks of Table 1 (D = 3B + 2): Xception C35 and IGCV2 C64 (Table "
        "4), IGCV1 C48 and IGCV2 C80 (Table 6), all about 0.05M parameters at D = 8.",
        table4_arms, ("cifar100", "tiny-imagenet"), "pareto"),
)}


def arms_for(target: str, budget: Budget) -> list[Arm]:
    """The arms of empirical target ``target`` at ``budget``."""
    return SPECS[target].arms(budget)


def paper_accuracy(arm: Arm, dataset: str) -> tuple[float, float | None] | None:
    """The paper's (top-1, std) of ``arm`` on ``dataset``, if it reports one."""
    if not arm.paper_model:
        return None
    name = arm.paper_model + ("_tiny" if dataset == "tiny-imagenet" else "")
    rows = paper_rows(model=name, table=arm.paper_table, dataset=dataset)
    if not rows or rows[0].get("top1") is None:
        return None
    return rows[0]["top1"], rows[0].get("top1_std")
