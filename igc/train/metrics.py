"""Accuracy counting for training and evaluation.

The run-folder files (``metrics.jsonl``, ``summary.json``) are read and written by
:mod:`igc.files.records`, numbers formatted by :mod:`igc.formatting`; their names are
re-exported here for existing callers.
"""

from __future__ import annotations

import torch

from igc.files.records import (
    METRICS,
    SUMMARY,
    append_jsonl,
    truncate_metrics,
)
from igc.files.records import read_metrics as read_jsonl
from igc.formatting import count as human
from igc.formatting import duration, pct


def topk_correct(logits: torch.Tensor, labels: torch.Tensor,
                 ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """How many rows of ``logits (N, classes)`` have their label among the top ``k``, for
    each ``k`` (capped at the number of classes), as 0-d int64 tensors on the same device."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (N, kmax)
    hits = top.eq(labels[:, None])
    return [hits[:, :min(k, kmax)].any(dim=1).sum() for k in ks]


__all__ = ["METRICS", "SUMMARY", "append_jsonl", "duration", "human", "pct", "read_jsonl",
           "topk_correct", "truncate_metrics"]
