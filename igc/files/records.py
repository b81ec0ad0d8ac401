"""The JSON files of a run folder: ``metrics.jsonl``, ``summary.json``, ``run.json``.

Each has a reader that checks every field it hands on (:data:`METRIC_FIELDS`,
:data:`SUMMARY_FIELDS`, :data:`RUN_FIELDS`) and a writer: whole files are written
atomically, metric lines are appended and flushed one at a time (a crash can tear only the
last line, which the reader skips). Files are read up to :data:`MAX_RECORD_BYTES`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from igc.checks import MAX_EPOCHS, MAX_NAME
from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.files.schema import Spec, check_fields
from igc.formatting import first_line

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
RUN_INFO = "run.json"
#: The largest JSON file read (a metrics log of 100,000 epochs is about 40 MB).
MAX_RECORD_BYTES = 64 << 20

_NUM = Spec(float, finite=False, optional=True, null=True)
_PCT = Spec(float, 0, 100, optional=True, null=True)
_COUNT = Spec(int, 0, 2**62, optional=True, null=True)

#: One line of ``metrics.jsonl`` (one epoch).
METRIC_FIELDS: dict[str, Spec] = {
    "epoch": Spec(int, 1, MAX_EPOCHS),
    "train_loss": Spec(float, finite=False), "train_acc": Spec(float, 0, 100),
    "lr": Spec(float, 0, None), "test_loss": _NUM, "top1": _PCT, "top5": _PCT,
    "seconds": _NUM, "images_per_s": _NUM, "eval_seconds": _NUM, "images": _COUNT,
    "step": _COUNT, "ema_test_loss": _NUM, "ema_top1": _PCT, "ema_top5": _PCT,
    "test_top1": _PCT, "test_top5": _PCT, "val_loss": _NUM, "val_top1": _PCT,
    "val_top5": _PCT, "ema_val_loss": _NUM, "ema_val_top1": _PCT, "ema_val_top5": _PCT,
}
#: ``summary.json`` (a finished run) as ``igc summarize`` and ``igc plot`` read it.
SUMMARY_FIELDS: dict[str, Spec] = {
    "model": Spec(str, 1, MAX_NAME), "data": Spec(str, 0, MAX_NAME),
    "recipe": Spec(str, 0, MAX_NAME, optional=True), "top1": _PCT, "top5": _PCT,
    "params": _COUNT, "macs": _COUNT, "epochs": Spec(int, 0, MAX_EPOCHS, optional=True),
    "ema_top1": _PCT, "ema_top5": _PCT, "val_top1": _PCT, "val_top5": _PCT,
    "val_images": _COUNT,
}
#: ``run.json`` (what a run is), as far as readers use it.
RUN_FIELDS: dict[str, Spec] = {
    "model": Spec(str, 1, MAX_NAME), "data": Spec(str, 0, MAX_NAME),
    "recipe": Spec(str, 0, MAX_NAME, optional=True), "params": _COUNT, "macs": _COUNT,
    "data_dir": Spec(str, 1, 4096, optional=True, null=True),
}


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise IGCError(f"{what} {path} is {size / 2**20:.0f} MiB, over the "
                           f"{MAX_RECORD_BYTES >> 20} MiB limit; it is not igc's")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IGCError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IGCError(f"cannot read {what} {path} ({first_line(exc, 80)})") from None


def read_json(path: str | Path, fields: dict[str, Spec], what: str) -> dict[str, Any]:
    """A JSON object file whose ``fields`` are checked; IGCError otherwise."""
    path = Path(path)
    text = _read_text(path, what)
    fix = f"the file is damaged: delete {path} or restore it"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IGCError(f"{what} {path} is not JSON ({first_line(exc, 80)}); {fix}") from None
    return check_fields(data, fields, f"{what} {path}", fix)


def write_json(path: str | Path, data: dict[str, Any], what: str = "file") -> Path:
    """``data`` as indented JSON, atomically."""
    return atomic_write(path, json.dumps(data, indent=2) + "\n", what)


def read_summary(path: str | Path) -> dict[str, Any]:
    """``summary.json`` (``path`` is the file or its run folder), checked."""
    path = Path(path)
    return read_json(path / SUMMARY if path.is_dir() else path, SUMMARY_FIELDS, "summary")


def read_run_info(path: str | Path) -> dict[str, Any]:
    """``run.json`` (``path`` is the file or its run folder), checked."""
    path = Path(path)
    return read_json(path / RUN_INFO if path.is_dir() else path, RUN_FIELDS, "run info")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` and flush it to disk."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise IGCError(f"cannot write {path} ({exc.strerror or exc}); check the disk space "
                       "and permissions of the run folder") from None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a ``metrics.jsonl``, each checked.

    A torn last line (from a crash) is skipped."""
    path = Path(path)
    lines = _read_text(path, "metrics file").splitlines()
    fix = f"the metrics file is damaged: delete {path} or restore it"
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue
            raise IGCError(f"{path} line {i + 1} is not JSON; {fix}") from None
        records.append(check_fields(record, METRIC_FIELDS, f"{path} line {i + 1}", fix))
    return records


def truncate_metrics(path: str | Path, epochs_done: int) -> None:
    """Keep only the records of the first ``epochs_done`` epochs.

    On resume: drop what an interrupted run wrote after its last checkpoint."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if r["epoch"] <= epochs_done]
    atomic_write(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in keep),
                 "metrics file")


__all__ = ["METRICS", "METRIC_FIELDS", "RUN_FIELDS", "RUN_INFO", "SUMMARY", "SUMMARY_FIELDS",
           "append_jsonl", "read_json", "read_metrics", "read_run_info", "read_summary",
           "truncate_metrics", "write_json"]
