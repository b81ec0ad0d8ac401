"""Process-wide torch settings changed for a block and restored after it.

:func:`num_threads` is the one way igc changes ``torch.set_num_threads``: library calls
(training, evaluation, benchmarks) leave the caller's thread count as they found it, also
when they raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from igc.checks import MAX_THREADS, check_int

#: OpenMP settings the ``igc`` command makes unless the user set them (see
#: :func:`configure_openmp`).
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_openmp() -> dict[str, str]:
    """Set :data:`OPENMP_DEFAULTS` in the environment where the user has not set them;
    returns what was set. Must run before torch is imported (OpenMP reads it once): the
    ``igc`` command calls it first thing. Waiting OpenMP threads then sleep instead of
    spinning, which keeps two threads from collapsing to a crawl on a machine where
    another process is busy (igc.train.threads)."""
    changed = {}
    for key, value in OPENMP_DEFAULTS.items():
        if key not in os.environ:
            os.environ[key] = value
            changed[key] = value
    return changed


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; all of them where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def num_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (``None``: unchanged; code inside
    may change it further) and restore the caller's count afterwards. Yields the count;
    IGCError for a count below 1."""
    import torch

    if threads is not None:
        check_int(threads, "the thread count", 1, MAX_THREADS)
    before = torch.get_num_threads()
    try:
        if threads is not None and threads != before:
            torch.set_num_threads(threads)
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


__all__ = ["OPENMP_DEFAULTS", "available_cores", "configure_openmp", "num_threads"]
