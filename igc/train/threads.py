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
(:func:`free_cores`), so a run that starts beside a busy process starts with fewer
threads; with ``adaptive_threads`` (the default) the count is then re-decided every few
seconds. The thread count changes floating-point summation order, so a run whose count
switched is not bit-identical to one that did not; ``adaptive_threads = false`` keeps the
first choice for the whole run.

OpenMP's waiting policy matters as much: by default its threads spin while they wait for
each other, which on a shared core steals time from the sibling they wait for.
``OMP_WAIT_POLICY=PASSIVE`` (set before Python starts) avoids the collapse for a fixed
thread count but costs about 19 % on an idle machine (measured: docs/training.md), so igc
leaves it to the user and switches thread counts instead.

Set ``threads`` in the recipe (or ``--threads``) to a fixed number for runs that must be
bit-identical on machines in any state (and for an exact ``--resume``).
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
    """The thread count of a CPU training run; call :meth:`tick` once per step.

    ``auto`` (the recipe's ``threads = 0`` in a single process): the run starts with as
    many threads as :func:`free_cores` finds free (at least one). Without ``switching``
    the count then stays fixed (the same seed on the same machine state gives the same
    weights). ``switching`` (the recipe's ``adaptive_threads``) re-decides every
    ``interval`` seconds: one thread once other processes use more
    than ``busy_above`` cores, ``max_threads`` again below ``idle_below`` (hysteresis
    between) -- faster where the load comes and goes, no longer bit-reproducible.
    ``steps`` counts the steps run at each thread count.
    """

    def __init__(self, max_threads: int, auto: bool = False, switching: bool = False,
                 interval: float = 3.0, busy_above: float = 0.5,
                 idle_below: float = 0.25) -> None:
        self.max_threads = max_threads
        self.interval, self.busy_above, self.idle_below = interval, busy_above, idle_below
        readable = _busy_seconds() is not None
        self.auto = auto and readable
        self.switching = switching and max_threads > 1 and readable
        self.current = max_threads
        self.others_at_start: float | None = None
        if self.auto or self.switching:
            free, self.others_at_start = free_cores(max_threads)
            if self.others_at_start is not None and self.others_at_start > busy_above:
                self.current = free if self.auto else 1
        self.steps: dict[int, int] = {}
        self.switches = 0
        torch.set_num_threads(self.current)
        self._mark()

    @property
    def enabled(self) -> bool:
        """Whether the count may change during the run."""
        return self.switching

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
        if not self.switching or time.monotonic() - self._t < self.interval:
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
        """One phrase for the run's first and last lines, e.g. ``"2 threads (2 of 2 cores
        free)"``, ``"1 thread (1 of 2 cores free: other processes used 1.0)"``, ``"2
        threads (fixed)"`` or ``"2 threads (switching to 1 while other processes use a
        core; 12% of steps with 1)"``."""
        n = self.current if not self.steps else max(self.steps, key=self.steps.get)
        text = f"{n} thread{'s' if n > 1 else ''}"
        if self.switching:
            total = sum(self.steps.values())
            share = f"; {100 * self.steps.get(1, 0) / total:.0f}% of steps with 1" \
                if total else ""
            return text + f" (switching to 1 while other processes use a core{share})"
        if not self.auto:
            return text + " (fixed)"
        if self.others_at_start is None:
            return text + f" (of {self.max_threads} cores)"
        free = max(1, min(self.max_threads, self.max_threads - int(self.others_at_start + 0.5)))
        busy = (f": other processes used {self.others_at_start:.1f}"
                if self.others_at_start > self.busy_above else "")
        return text + f" ({free} of {self.max_threads} cores free{busy})"
