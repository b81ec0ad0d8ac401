"""Draw a block's connectivity like the IGCV2 paper's Figure 1.

Channels are columns; each level is the input or the output of one factor (after its
permutation). Every branch of every factor is a coloured band, every connection a thin
line, and one input-to-output path is highlighted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from igc.checks import check_writable_file
from igc.errors import IGCError
from igc.names import PICTURE_SUFFIXES
from igc.sparsity import KernelProduct
from igc.viz import pyplot, save_figure

MAX_DRAW_CHANNELS = 64


def draw_connectivity(product: KernelProduct, path: str | Path,
                      highlight: int | None = None) -> None:
    """Draw ``product``'s factors to ``path`` (PNG, SVG or PDF by its suffix).

    Written atomically; ``highlight`` is the input channel whose first path to output 0's
    side is drawn in bold."""
    path = check_writable_file(path, "--draw", PICTURE_SUFFIXES)
    widths = [product.in_channels] + [f.out_channels for f in product.factors]
    node = product.in_channels // 3 if highlight is None else highlight
    if max(widths) > MAX_DRAW_CHANNELS:
        raise IGCError(f"--draw shows at most {MAX_DRAW_CHANNELS} channels; "
                       f"use a smaller --channels for the picture")
    plt = pyplot()
    levels = len(product.factors)
    fig, ax = plt.subplots(figsize=(max(6, max(widths) * 0.22), 1.6 + 1.5 * levels))
    cmap = plt.get_cmap("tab20")
    xs = [np.linspace(0, 1, w) if w > 1 else np.array([0.5]) for w in widths]

    for l, factor in enumerate(product.factors):
        y0, y1 = levels - l, levels - l - 1
        perm = product.permutation(l)
        where = np.argsort(perm) if perm is not None else np.arange(factor.out_channels)
        chosen_out = None
        for o in range(factor.out_channels):
            b = o // factor.branch_out
            colour = cmap(b % 20)
            for i in range(b * factor.branch_in, (b + 1) * factor.branch_in):
                bold = i == node and chosen_out is None
                if bold:
                    chosen_out = o
                ax.plot([xs[l][i], xs[l + 1][where[o]]], [y0, y1 + 0.08],
                        color="black" if bold else colour, lw=2.2 if bold else 0.5,
                        alpha=1.0 if bold else 0.55, zorder=3 if bold else 1)
        node = int(where[chosen_out])
        ax.text(1.02, y0 - 0.5, f"W{l + 1}: {factor.groups} branches of {factor.branch_in}"
                f"{' (3x3)' if factor.is_spatial else ' (1x1)'}"
                + (f", then P{l + 1}" if perm is not None else ""),
                va="center", fontsize=9, transform=ax.transData)
    for l, w in enumerate(widths):
        ax.scatter(xs[l], [levels - l] * w, s=14, color="0.2", zorder=4)
    c = product.connectivity
    ax.set_title(f"C={product.in_channels}, branch sizes {list(product.branch_sizes)}: "
                 f"{c.condition}, {c.min_paths}..{c.max_paths} paths per pair", fontsize=10)
    ax.set_xlim(-0.03, 1.45)
    ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, "drawing", dpi=130)
