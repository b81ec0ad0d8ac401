"""Timing utilities: interleaved runs with medians and spread, the machine's dense
matrix-multiply rate; :func:`~igc.runtime.num_threads` (the thread-count context manager
that restores what it changed) is re-exported here.

Several candidates timed one after the other in blocks drift apart when the machine is
shared (another process takes a core for a while and one candidate pays for it). Here
every round runs each candidate once, in a rotating order, after a warm-up; the summary
is the median over rounds and the inter-quartile range.

The benchmark driver (:mod:`igc.deploy.bench`), ``optimize(mode="measure")`` and the
cost-model calibration all use it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from igc.runtime import num_threads  # re-exported: the one thread-count context


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, first and third quartiles, over ``rounds`` samples."""

    median: float
    q1: float
    q3: float
    rounds: int
    calls_per_sample: int

    @property
    def iqr(self) -> float:
        """The inter-quartile range in seconds."""
        return self.q3 - self.q1

    def to_dict(self) -> dict:
        """The fields as JSON-ready numbers (``median_s``, ``q1_s``, ...)."""
        return {"median_s": self.median, "q1_s": self.q1, "q3_s": self.q3,
                "rounds": self.rounds, "calls_per_sample": self.calls_per_sample}


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 4:
        m = statistics.median(xs)
        return min(xs), m, max(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def device_sync(device: torch.device | str | None) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on the CPU), for
    timing asynchronous accelerators with a host clock."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 20,
                     warmup: int = 2, min_sample_s: float = 0.002,
                     max_calls: int = 50, clock: Callable[[], float] = time.perf_counter,
                     sync: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable, interleaved, and summarise per candidate.

    Warm-up calls run first (``warmup`` each, at least one); a sample then repeats a call
    enough times to last ``min_sample_s`` (at most ``max_calls``), so very short calls are
    not lost in timer noise. ``repeats`` rounds each run every candidate once, the order
    rotating from round to round. ``clock`` may be ``time.thread_time`` to count only this
    thread's CPU time (robust on a shared machine, meaningful with one thread only).
    ``sync`` (e.g. :func:`device_sync`) runs before each clock reading.
    """
    wait = sync or (lambda: None)

    def stamp() -> float:
        wait()
        return clock()

    names = list(candidates)
    calls: dict[str, int] = {}
    for name in names:
        fn = candidates[name]
        for _ in range(max(1, warmup)):
            fn()
        start = stamp()
        fn()
        once = stamp() - start
        calls[name] = max(1, min(max_calls, int(min_sample_s / max(once, 1e-9))))
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, repeats)):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn, k = candidates[name], calls[name]
            start = stamp()
            for _ in range(k):
                fn()
            samples[name].append((stamp() - start) / k)
    out = {}
    for name in names:
        q1, med, q3 = _quartiles(samples[name])
        out[name] = Timing(med, q1, q3, len(samples[name]), calls[name])
    return out


__all__ = ["Timing", "device_sync", "num_threads", "time_interleaved"]
