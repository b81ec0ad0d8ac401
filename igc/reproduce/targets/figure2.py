"""Empirical target ``figure2``: the K sweep of Figure 2 at fixed L and budget."""

from __future__ import annotations

from dataclasses import asdict

from igc.reproduce.arms import Arm, eight_layer_args
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import EMPIRICAL, Target
from igc.reproduce.sweeps import (
    FIGURE2_BUDGET,
    FIGURE2_PANELS,
    SWEEP_MODEL,
    figure2_points,
    sweep_args,
)


def figure2_arms(budget: Budget) -> list[Arm]:
    """The K sweep of Figure 2: the budget's first panels (L = 3, 4, 5)."""
    arms = []
    for p in figure2_points(FIGURE2_BUDGET, FIGURE2_PANELS[:budget.figure2_panels]):
        sizes = list(p.branch_sizes)
        info = {**asdict(p), "branch_sizes": tuple(sizes)}
        arms.append(Arm(f"L{p.layers}-K{p.branch}", f"L={p.layers} K={p.branch} C={p.width}",
                        SWEEP_MODEL, "igcv2", f"({p.panel}) L = {p.layers}",
                        eight_layer_args(budget, **sweep_args(p.width, sizes)),
                        info=tuple(sorted(info.items()))))
    return arms


TARGET = Target(
    "figure2", EMPIRICAL, "Figure 2 (accuracy)",
    "train the K sweep at fixed L and budget (complementary / dense / sparse)",
    arms=figure2_arms,
    title="Figure 2: the K sweep at fixed L and budget (accuracy)",
    intro="8-layer IGCV2 networks with a channel-wise 3x3 and L-1 group 1x1 of branch size K "
          f"at about the same number of parameters per block ({FIGURE2_BUDGET:,}); widths "
          "and conditions as in `figure2-design`. Red: (nearly) complementary; blue: dense, "
          "redundant; green: sparse. The paper plots Figure 2 without printing numbers.",
    plot="bars")
