"""Where a result was made: the machine (CPU model, cores, device, torch version) and the
git commit of the code, recorded with every run (`igc train`'s run.json, `igc reproduce`'s
result.json) and in the reproduction document."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """A record of this machine for a run on ``device`` (``cpu`` / ``cuda:N``)."""
    import torch

    record: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count() or 1,
                              "usable_cores": usable_cores(), "device": str(device),
                              "torch": torch.__version__,
                              "python": platform.python_version(),
                              "system": f"{platform.system()} {platform.machine()}"}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if threads is not None:
        record["threads"] = threads
    return record


def describe(record: dict[str, Any]) -> str:
    """One line for a machine record: 'AMD EPYC ... (2 cores), cpu, torch 2.13.0'."""
    device = record.get("gpu") or record.get("device", "?")
    return (f"{record.get('cpu', '?')} ({record.get('cores', '?')} cores), {device}, "
            f"torch {record.get('torch', '?')}")


@cache
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, ``+dirty`` with uncommitted
    changes to tracked files; None outside a git checkout (an installed package)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
