"""The analytic targets that count the paper's tables from the zoo's modules
(:func:`igc.reproduce.counts.count_table`, rendered by
:func:`igc.reproduce.render.count_table`)."""

from __future__ import annotations

from functools import partial

import igc.reproduce.counts as counts
import igc.reproduce.render as render
from igc.reproduce.registry import ANALYTIC, Target


def _count(table: str, paper: str, summary: str) -> Target:
    return Target(f"table{table}-counts", ANALYTIC, paper, summary,
                  partial(counts.count_table, table), render.count_table)


TARGETS = [
    _count("2", "Table 2 (#Params / FLOPs column)",
           "per-block parameters and multiply-adds of Xception vs IGCV2 (8-layer nets)"),
    _count("5", "Table 5 (#Params / FLOPs column)",
           "per-block parameters and multiply-adds of IGCV1 vs IGCV2-I vs IGCV2-II"),
    _count("3", "Table 3 (#Params, FLOPs)",
           "Xception / IGCV1 / IGCV2* at depth 20, counted from the zoo's modules"),
    _count("4", "Table 4 (#Params, FLOPs)",
           "Xception C35 vs IGCV2 C64 at depths 8/20/26, counted from the zoo"),
    _count("6", "Table 6 (#Params, FLOPs)",
           "IGCV1 C48 vs IGCV2 C80 at depths 8/20/26, counted from the zoo"),
    _count("7", "Table 7 (#Params)",
           "IGCV2*-C416 (D20), the paper's small-model entry, counted from the zoo"),
    _count("9", "Tables 8-9 (#Params, FLOPs)",
           "ImageNet IGCV2-alpha vs MobileNetV1-alpha, counted from the zoo"),
    _count("11", "Tables 10-11 (#Params, FLOPs)",
           "ImageNet IGCV3-alpha vs MobileNetV2-alpha, counted from the zoo"),
]
