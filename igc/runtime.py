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


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; all of them where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def num_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads, then restore the caller's count.

    ``None`` leaves the count unchanged (code inside may change it further). Yields the
    count; IGCError for a count below 1."""
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


__all__ = ["available_cores", "num_threads"]
