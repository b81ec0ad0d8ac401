"""Mean ± standard deviation of final accuracies over runs, as the papers report them.

A run directory holds ``summary.json`` (written when its last epoch is done) and
``metrics.jsonl``; an unfinished run is summarised from its last evaluated epoch and marked
so. Runs of the same model, data set and recipe form one group (e.g. the seed subfolders
that ``igc train --seeds N`` writes).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from igc.checks import check_existing
from igc.errors import IGCError
from igc.files.records import (
    METRICS,
    RUN_INFO,
    SUMMARY,
    read_metrics,
    read_run_info,
    read_summary,
)
from igc.formatting import count, mean_std

#: The most run folders one call reads (a typo like ``/`` must not walk the whole disk).
MAX_SUMMARY_RUNS = 10_000


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY).is_file() or (path / METRICS).is_file()


def load_run(path: str | Path) -> dict[str, Any]:
    """The final result of one run directory (``complete`` says whether it finished);
    every file read is validated (:mod:`igc.files.records`)."""
    path = Path(path)
    if (path / SUMMARY).is_file():
        return {**read_summary(path), "out": str(path), "complete": True}
    if not (path / METRICS).is_file():
        raise IGCError(f"{path} is not a run directory (no {SUMMARY} or {METRICS})")
    records = [r for r in read_metrics(path / METRICS) if r.get("top1") is not None]
    info = read_run_info(path) if (path / RUN_INFO).is_file() else {}
    last = records[-1] if records else {}
    return {"model": info.get("model", path.name), "data": info.get("data", "?"),
            "recipe": info.get("recipe", "?"), "params": info.get("params"),
            "macs": info.get("macs"), "epochs": last.get("epoch", 0),
            "top1": last.get("top1"), "top5": last.get("top5"), "out": str(path),
            "complete": False}


def find_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every run in ``paths``: a run directory itself, or the runs found below it."""
    runs = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise IGCError(f"{p} does not exist; give run directories written by igc train")
        p = check_existing(p, "run folder", "dir")
        if is_run_dir(p):
            runs.append(load_run(p))
            continue
        found: set[Path] = set()
        for pattern in (SUMMARY, METRICS):
            for m in p.rglob(pattern):
                found.add(m.parent)
                if len(found) > MAX_SUMMARY_RUNS:
                    raise IGCError(f"{p} holds over {MAX_SUMMARY_RUNS:,} runs; give the folders of "
                                   "the runs to summarize")
        if not found:
            raise IGCError(f"{p} holds no runs (no {SUMMARY} or {METRICS} below it)")
        runs += [load_run(d) for d in sorted(found)]
    return runs


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def group_runs(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of runs with the same model, data set and recipe, with the mean and sample
    standard deviation (n - 1) of their final top-1 and top-5."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        key = (run.get("model"), run.get("data"), run.get("recipe"))
        groups.setdefault(key, []).append(run)
    out = []
    for (model, data, recipe), members in groups.items():
        top1, top1_std = _stats([m.get("top1") for m in members])
        top5, top5_std = _stats([m.get("top5") for m in members])
        out.append({
            "model": model, "data": data, "recipe": recipe, "runs": len(members),
            "complete": sum(1 for m in members if m.get("complete", True)),
            "top1_mean": top1, "top1_std": top1_std, "top5_mean": top5, "top5_std": top5_std,
            "top1": [m.get("top1") for m in members], "params": members[0].get("params"),
            "macs": members[0].get("macs"), "epochs": [m.get("epochs") for m in members],
            "dirs": [m.get("out") for m in members],
        })
    return out


def format_groups(groups: list[dict[str, Any]]) -> str:
    """A table: one row per group, top-1 and top-5 as mean ± std (%)."""
    header = (f"{'model':<26} {'data':<14} {'runs':>4}  {'top-1 % (mean ± std)':>21}  "
              f"{'top-5 %':>14}  {'params':>7}  {'MACs':>7}")
    lines = [header, "-" * len(header)]
    for g in groups:
        runs = f"{g['runs']}" if g["complete"] == g["runs"] else f"{g['complete']}/{g['runs']}"
        lines.append(f"{g['model']!s:<26} {g['data']!s:<14} {runs:>4}  "
                     f"{mean_std(g['top1_mean'], g['top1_std']):>21}  "
                     f"{mean_std(g['top5_mean'], g['top5_std']):>14}  "
                     f"{count(g['params']):>7}  {count(g['macs']):>7}")
    if any(g["complete"] < g["runs"] for g in groups):
        lines.append("runs a/b: a of b runs finished; unfinished ones count with their last "
                     "evaluated epoch")
    return "\n".join(lines)
