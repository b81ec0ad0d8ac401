"""Accuracy counting, the per-epoch ``metrics.jsonl`` log and number formatting."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from igc.errors import IGCError

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def topk_correct(logits: torch.Tensor, labels: torch.Tensor,
                 ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """How many rows of ``logits (N, classes)`` have their label among the top ``k``, for
    each ``k`` (capped at the number of classes), as 0-d int64 tensors on the same device."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (N, kmax)
    hits = top.eq(labels[:, None])
    return [hits[:, :min(k, kmax)].any(dim=1).sum() for k in ks]


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` and flush it to disk."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")
        handle.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line, from a crash, is skipped)."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise IGCError(f"cannot read {path} ({exc.strerror or exc})") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise IGCError(f"{path} line {i + 1} is not JSON; the metrics file is damaged") \
                from None
    return records


def truncate_metrics(path: str | Path, epochs_done: int) -> None:
    """Keep only the records of the first ``epochs_done`` epochs (on resume, drop the lines
    an interrupted run wrote after its last checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_jsonl(path) if int(r.get("epoch", 0)) <= epochs_done]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    tmp.replace(path)


def human(n: float | int | None, unit: str = "") -> str:
    """``25634 -> '25.6k'``, ``4.1e6 -> '4.10M'``; ``None -> 'n/a'``."""
    if n is None:
        return "n/a"
    n = float(n)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g}{suffix}{unit}" if value < 100 else f"{value:.0f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def duration(seconds: float) -> str:
    """``372.4 -> '6m12s'``, ``4000 -> '1h06m40s'``, ``12.3 -> '12.3s'``."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}%"
