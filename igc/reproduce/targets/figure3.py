"""Empirical target ``figure3``: the L sweep of Figure 3 at one parameter count."""

from __future__ import annotations

from dataclasses import asdict

from igc.reproduce.arms import Arm, eight_layer_args
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import EMPIRICAL, Target
from igc.reproduce.sweeps import SWEEP_MODEL, figure3_points, sweep_args


def figure3_arms(budget: Budget) -> list[Arm]:
    """The L sweep of Figure 3 at the budget's per-block parameters."""
    arms = []
    for p in figure3_points(budget.figure3_budget):
        info = {**asdict(p), "branch_sizes": tuple(p.branch_sizes)}
        arms.append(Arm(f"L{p.layers}", f"L={p.layers} C={p.width}", SWEEP_MODEL, "igcv2",
                        f"Q ≈ {budget.figure3_budget:,} / block",
                        eight_layer_args(budget, **sweep_args(p.width, p.branch_sizes[1:])),
                        info=tuple(sorted(info.items()))))
    return arms


TARGET = Target(
    "figure3", EMPIRICAL, "Figure 3 (accuracy curve)",
    "train the L sweep at one parameter count (balanced, complementary blocks)",
    arms=figure3_arms,
    title="Figure 3: the L sweep at one parameter count (accuracy)",
    intro="8-layer IGCV2 networks, channel-wise 3x3 and L-1 balanced group 1x1, the widest "
          "strictly complementary block per L within the budget (as in `figure3-sparsity`). "
          "The paper plots Figure 3 without printing numbers.",
    plot="curve")
