"""The analytic targets of the paper's design rules (Figures 2-3, eqs. 7-14): computed by
:mod:`igc.reproduce.analytic`, rendered by :mod:`igc.reproduce.render`."""

from __future__ import annotations

import igc.reproduce.analytic as analytic
import igc.reproduce.render as render
from igc.reproduce.registry import ANALYTIC, Target

TARGETS = [
    Target("width-vs-layers", ANALYTIC, "Figure 2(a), Figure 3 (width curve)",
           "widest channel-wise IGCV2 block per L at fixed per-block parameter budgets",
           analytic.width_vs_layers, render.width_vs_layers),
    Target("params-vs-layers", ANALYTIC, "eqs. 7, 10, 11, 14",
           "parameters of the best design per L at fixed widths, the eq. 10 bound, "
           "eq. 14's best L", analytic.params_vs_layers, render.params_vs_layers),
    Target("figure2-design", ANALYTIC, "Figure 2 (widths and conditions)",
           "the K/L sweep at a fixed budget: width per K, complementary / dense / sparse",
           analytic.figure2_design, render.figure2_design),
    Target("figure3-sparsity", ANALYTIC, "Figure 3 (width and non-sparsity curves)",
           "8-layer IGCV2 nets at one parameter count: width and non-sparsity versus L",
           analytic.figure3_sparsity, render.figure3_sparsity),
]
