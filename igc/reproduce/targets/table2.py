"""Empirical target ``table2``: Xception vs IGCV2, the 8-layer networks of Table 2."""

from __future__ import annotations

from igc.reproduce.arms import Arm, paper_arms
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import EMPIRICAL, Target


def table2_arms(budget: Budget) -> list[Arm]:
    """Table 2's rows, the budget's first groups."""
    return paper_arms("2", budget)


TARGET = Target(
    "table2", EMPIRICAL, "Table 2 (accuracy)",
    "train Xception C64/96/128 vs IGCV2 C144/256/361 (8-layer nets)",
    arms=table2_arms,
    title="Table 2: Xception vs IGCV2, 8-layer networks (accuracy)",
    intro="Six blocks at one resolution between a 3x3 stem and the classifier; each pair "
          "has about the same number of parameters per block.",
    paper_datasets=("cifar10", "cifar100"), plot="pareto")
