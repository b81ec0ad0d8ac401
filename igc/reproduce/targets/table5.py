"""Empirical target ``table5``: IGCV1 vs IGCV2-I vs IGCV2-II, the 8-layer networks of
Table 5."""

from __future__ import annotations

from igc.reproduce.arms import Arm, paper_arms
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import EMPIRICAL, Target


def table5_arms(budget: Budget) -> list[Arm]:
    """Table 5's rows, the budget's first groups."""
    return paper_arms("5", budget)


TARGET = Target(
    "table5", EMPIRICAL, "Table 5 (accuracy)",
    "train IGCV1 vs IGCV2-I vs IGCV2-II (8-layer nets, three budgets)",
    arms=table5_arms,
    title="Table 5: IGCV1 vs IGCV2-I vs IGCV2-II, 8-layer networks (accuracy)",
    intro="IGCV2-I keeps IGCV1's group 3x3 (K_1 = 2) and splits the 1x1 into two; IGCV2-II "
          "uses a channel-wise 3x3 and two balanced group 1x1 (the paper's recommended "
          "design).",
    paper_datasets=("cifar10", "cifar100"), plot="pareto")
