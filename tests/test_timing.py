"""The timing utilities: interleaving, and thread counts restored after use."""

from __future__ import annotations

import pytest
import torch

from igc.deploy.timing import num_threads, time_interleaved
from igc.errors import IGCError


def test_timing_harness_interleaves():
    calls = []
    timing = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              repeats=3, warmup=1, min_sample_s=0.0, max_calls=1)
    assert set(timing) == {"a", "b"} and timing["a"].rounds == 3
    assert calls[-6:] in (["a", "b", "b", "a", "a", "b"], ["b", "a", "a", "b", "b", "a"])


def test_sync_runs_before_every_clock_reading():
    events = []
    time_interleaved({"a": lambda: events.append("call")}, repeats=2, warmup=1,
                     min_sample_s=0.0, max_calls=1, sync=lambda: events.append("sync"))
    # warm-up call, then every timed call is bracketed by two syncs
    assert events == ["call", "sync", "call", "sync"] + ["sync", "call", "sync"] * 2


def test_num_threads_restores_after_success_and_error():
    before = torch.get_num_threads()
    other = 2 if before != 2 else 1
    with num_threads(other) as used:
        assert used == other == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), num_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with num_threads(None) as used:
        assert used == before
    with pytest.raises(IGCError, match="at least 1"), num_threads(0):
        pass
    assert torch.get_num_threads() == before
