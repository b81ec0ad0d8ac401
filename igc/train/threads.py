"""How many threads a CPU run uses, adapted to what else runs on the machine.

The small convolutions of these networks synchronise their OpenMP threads hundreds of times
per step. On an idle two-core machine two threads train about 1.7x faster than one; but
when another process keeps a core busy, one of the two threads waits for its share of that
core at every synchronisation, and two threads train 5-20x *slower* than one (measured on
the development machines). :class:`ThreadGovernor` therefore watches the machine
(``/proc/stat``: CPU time used by everything else, including a hypervisor's steal time)
every few seconds and uses every core while the rest of the machine is idle, one thread
while it is not.

The first choice is made before training from a short look at the machine
(:func:`free_cores`), so a run that starts beside a busy process starts with one thread.

The OpenMP runtime itself makes the collapse worse: by default its threads spin while they
wait for each other, which on a shared core steals time from the sibling they wait for. The
``igc`` command therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it
(:func:`igc.runtime.configure_openmp`); measured beside one busy process, two threads then
train about as fast as one instead of 10-20x slower (docs/training.md).

Changing the thread count can change floating-point summation order; set ``threads`` in
the recipe (or ``--threads``) to a fixed number for bit-reproducible runs.
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


def free_cores(total: int, sample: float = 0.25) -> tuple[int, float | None]:
    """``(free, others)``: how many of ``total`` cores other processes leave free, from
    ``/proc/stat`` over ``sample`` seconds (``others``: the cores they used; ``None`` and
    ``total`` free where that cannot be read)."""
    busy, own, start = _busy_seconds(), _own_seconds(), time.monotonic()
    if busy is None:
        return total, None
    time.sleep(sample)
    after = _busy_seconds()
    wall = time.monotonic() - start
    if after is None or wall <= 0:
        return total, None
    others = max(0.0, (after - busy) - (_own_seconds() - own)) / wall
    return max(1, min(total, total - int(others + 0.5))), others


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
        self.others_at_start: float | None = None
        if self.enabled:
            _, self.others_at_start = free_cores(max_threads)
            if self.others_at_start is not None and self.others_at_start > busy_above:
                self.current = 1
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
        """e.g. ``"2 threads (adaptive: 1 while other processes use a core; starting with
        1: others used 1.0 of 2 cores)"`` or, after training, ``"... 12% of steps with 1"``."""
        n = self.max_threads
        text = f"{n} thread{'s' if n > 1 else ''}"
        if not self.enabled:
            return text + " (fixed)"
        text += " (adaptive: 1 while other processes use a core"
        if self.others_at_start is not None and not self.steps:
            text += (f"; starting with {self.current}: others used "
                     f"{self.others_at_start:.1f} of {n} cores")
        total = sum(self.steps.values())
        single = self.steps.get(1, 0)
        if total:
            text += f"; {100 * single / total:.0f}% of steps with 1"
        return text + ")"
