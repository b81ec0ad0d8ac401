"""How many threads a CPU run uses, adapted to what else runs on the machine.

The small convolutions of these networks synchronise their OpenMP threads hundreds of times
per step. On an idle two-core machine two threads train about 1.7x faster than one; but
when another process keeps a core busy, one of the two threads waits for its share of that
core at every synchronisation, and two threads train 5-20x *slower* than one (measured on
the development machines). :class:`ThreadGovernor` therefore watches the machine
(``/proc/stat``: CPU time used by everything else, including a hypervisor's steal time)
every few seconds and uses every core while the rest of the machine is idle, one thread
while it is not.

Changing the thread count can change floating-point summation order; set ``threads`` in
the recipe to a fixed number for bit-reproducible runs.
"""

from __future__ import annotations

import os
import time

import torch


def _busy_seconds() -> float | None:
    """Seconds of CPU time the whole machine has been busy (all CPUs), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Call :meth:`tick` once per training step; it re-decides every ``interval`` seconds.

    ``max_threads`` is used while the rest of the machine uses less than ``idle_below``
    cores; one thread once it uses more than ``busy_above`` cores (hysteresis between).
    ``steps`` counts the steps run at each thread count. With ``adaptive=False`` it keeps
    ``max_threads`` and only counts.
    """

    def __init__(self, max_threads: int, adaptive: bool = True, interval: float = 3.0,
                 busy_above: float = 0.5, idle_below: float = 0.25) -> None:
        self.max_threads = max_threads
        self.interval, self.busy_above, self.idle_below = interval, busy_above, idle_below
        self.enabled = adaptive and max_threads > 1 and _busy_seconds() is not None
        self.current = max_threads
        self.steps: dict[int, int] = {}
        self.switches = 0
        torch.set_num_threads(self.current)
        self._mark()

    def _mark(self) -> None:
        self._t, self._busy, self._own = time.monotonic(), _busy_seconds(), _own_seconds()

    def others(self) -> float | None:
        """Cores used by other processes since the last decision (None: unknown)."""
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            return None
        wall = time.monotonic() - self._t
        if wall <= 0:
            return None
        return max(0.0, (busy - self._busy) - (_own_seconds() - self._own)) / wall

    def tick(self) -> None:
        self.steps[self.current] = self.steps.get(self.current, 0) + 1
        if not self.enabled or time.monotonic() - self._t < self.interval:
            return
        others = self.others()
        if others is not None:
            want = self.current
            if others > self.busy_above:
                want = 1
            elif others < self.idle_below:
                want = self.max_threads
            if want != self.current:
                torch.set_num_threads(want)
                self.current = want
                self.switches += 1
        self._mark()

    def describe(self) -> str:
        """e.g. ``"2 threads (adaptive) (1 while the machine was busy: 12% of steps)"``."""
        total = sum(self.steps.values()) or 1
        single = self.steps.get(1, 0) if self.max_threads > 1 else 0
        text = f"{self.max_threads} thread{'s' if self.max_threads > 1 else ''}"
        if self.enabled:
            text += " (adaptive)"
        if single:
            text += f" (1 while the machine was busy: {100 * single / total:.0f}% of steps)"
        return text
