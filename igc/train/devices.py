"""Where a run computes: its device and its number of torch threads."""

from __future__ import annotations

import torch

from igc.errors import IGCError
from igc.runtime import available_cores
from igc.train.threads import ThreadGovernor


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise IGCError("--device cuda asked for, but no CUDA GPU is available; use "
                           "--device cpu or auto")
        return torch.device(name)
    raise IGCError(f"unknown device {name!r}; use auto, cpu or cuda")


def set_threads(threads: int, procs_per_node: int) -> int:
    """``torch.set_num_threads``: ``threads`` or the cores shared among the processes."""
    n = threads or max(1, available_cores() // max(1, procs_per_node))
    torch.set_num_threads(n)
    return n


def thread_governor(threads: int, procs_per_node: int, device: torch.device,
                    switching: bool = False) -> ThreadGovernor:
    """A :class:`~igc.train.threads.ThreadGovernor`: for ``threads = 0`` in a single CPU
    process the free cores (``switching``: re-decided during the run), else fixed at
    ``threads`` (or the cores per process)."""
    n = set_threads(threads, procs_per_node)
    auto = threads == 0 and procs_per_node == 1 and device.type == "cpu"
    return ThreadGovernor(n, auto=auto, switching=auto and switching)


__all__ = ["pick_device", "set_threads", "thread_governor"]
