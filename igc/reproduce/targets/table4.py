"""Empirical target ``table4``: Tables 4 and 6, Xception, IGCV1 and IGCV2 at matched
size (the residual networks of Table 1)."""

from __future__ import annotations

from igc.models.paper import paper_rows
from igc.reproduce.arms import Arm, family, frozen_args
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import EMPIRICAL, Target


def table4_arms(budget: Budget) -> list[Arm]:
    """Tables 4 and 6 at the budget's depths: Xception C35, IGCV2 C64, IGCV1 C48, IGCV2 C80."""
    arms = []
    for depth in budget.depths:
        for table in ("4", "6"):
            for row in paper_rows(table=table, dataset="cifar100"):
                if row.get("depth") == depth and row.get("model"):
                    args = frozen_args({"stem_stride": budget.stem_stride}
                                       if budget.stem_stride != 1 else {})
                    arms.append(Arm(row["model"], f"{row['network']} D{depth}", row["model"],
                                    family(row["model"]), f"D = {depth}", args, row["model"],
                                    table, (("depth", depth),)))
    return arms


TARGET = Target(
    "table4", EMPIRICAL, "Tables 4 and 6 (accuracy)",
    "train Xception C35, IGCV1 C48, IGCV2 C64 and C80 at matched size (D8; D20/D26 at the "
    "full budget)",
    arms=table4_arms,
    title="Tables 4 and 6: Xception, IGCV1 and IGCV2 at matched size (accuracy)",
    intro="The residual networks of Table 1 (D = 3B + 2): Xception C35 and IGCV2 C64 (Table "
          "4), IGCV1 C48 and IGCV2 C80 (Table 6), all about 0.05M parameters at D = 8.",
    paper_datasets=("cifar100", "tiny-imagenet"), plot="pareto")
