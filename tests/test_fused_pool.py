"""The fused kernel's output pool (issue 17): outputs of earlier calls are reused only when
nothing references them any more (no tensor, view, numpy array or storage object of
them lives), the outputs stay those of the eval model, and the pool stays within its
bounds and empties on request."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from conftest import randomize_bn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import block_forms, optimize
from igc.deploy import native as nat
from igc.layers import IGCV2Block, IGCV3Block


@pytest.fixture(scope="module")
def net() -> tuple[nn.Module, nn.Module]:
    """A small network of fused blocks (residual IGCV3, IGCV2 with a stride) and its eval
    model: consecutive outputs of equal size, so a wrong reuse would overwrite an input."""
    model = randomize_bn(nn.Sequential(
        IGCV3Block(16, 16, 1), IGCV3Block(16, 16, 1), IGCV2Block(16, 32, 1, groups=(2, 4)),
        IGCV2Block(32, 32, 2, groups=(4, 4), nonlinear=True), IGCV3Block(32, 32, 1)), 3)
    fused = optimize(model, "fused", example=torch.randn(1, 16, 12, 12))
    rows = block_forms(fused)
    assert rows and all(r.form == "fused" for r in rows), rows
    return model, fused


MODES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "inference_mode": torch.inference_mode, "no_grad": torch.no_grad,
    "grad_mode": contextlib.nullcontext}


def _hits() -> int:
    return nat.pool_stats()["hits"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(5, 20), st.integers(5, 20)),
                min_size=2, max_size=6), st.sampled_from(sorted(MODES)), st.integers(0, 2**16))
def test_outputs_equal_the_eval_model_over_many_forwards(native_kernel, net, shapes, mode, seed):
    """Each forward of a sequence of input sizes (repeated: the second pass reuses the
    first's buffers) equals the eval model."""
    model, fused = net
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(n, 16, h, w, generator=g) * 3 for n, h, w in shapes]
    before = _hits()
    with MODES[mode]():
        for x in inputs + inputs:
            expect = model(x)
            got = fused(x)
            assert got.is_contiguous(memory_format=torch.channels_last)
            assert (got - expect).abs().max().item() < 1e-4 * (expect.abs().max().item() + 1)
    assert _hits() > before  # the second pass reused the pool


@contextlib.contextmanager
def _held(fused: nn.Module, x1: torch.Tensor, mode: str) -> Iterator[torch.Tensor]:
    """Yields ``fused(x1)``, then runs ``fused`` on other inputs of its shape; the pool
    must have been used meanwhile (or nothing was tested)."""
    with MODES[mode]():
        y1 = fused(x1)
    yield y1
    before = _hits()
    with MODES[mode]():
        for i in range(4):
            out = fused(torch.full_like(x1, float(i + 1)))
            del out
    assert _hits() > before


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_held_output_is_never_overwritten(native_kernel, net, mode):
    _, fused = net
    x1 = torch.randn(1, 16, 12, 12)
    with _held(fused, x1, mode) as y1:
        copy = y1.clone()
    assert torch.equal(y1, copy)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_view_of_a_dropped_output_keeps_its_buffer(native_kernel, net, mode):
    _, fused = net
    x1 = torch.randn(1, 16, 12, 12)
    with _held(fused, x1, mode) as y1:
        view = y1[:, :3]
        copy = view.clone()
        del y1
    assert torch.equal(view, copy)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_numpy_array_of_a_dropped_output_keeps_its_buffer(native_kernel, net, mode):
    _, fused = net
    x1 = torch.randn(1, 16, 12, 12)
    with _held(fused, x1, mode) as y1:
        array = y1.numpy()
        copy = array.copy()
        del y1
    assert np.array_equal(array, copy)


def test_a_storage_object_keeps_its_buffer_until_it_is_dropped(native_kernel):
    """``untyped_storage()`` makes a Python object of the storage, which the storage then
    keeps alive: while the object is referenced the buffer is not reused, once only the
    storage holds it the buffer is free again (the pool's oldest of its size: reused
    next)."""
    block = randomize_bn(IGCV3Block(16, 16, 1), 5)
    fused = optimize(block, "fused", example=torch.randn(1, 16, 13, 11))
    x1, x2 = torch.randn(1, 16, 13, 11), torch.randn(1, 16, 13, 11)
    with torch.no_grad():
        y1 = fused(x1)
        storage = y1.untyped_storage()
        copy, address = bytes(storage), storage.data_ptr()
        del y1
        before = _hits()
        for _ in range(4):
            assert fused(x2).data_ptr() != address
        assert _hits() > before
        assert bytes(storage) == copy
        del storage
        assert fused(x2).data_ptr() == address


def test_the_pool_stays_within_its_bounds(native_kernel):
    """Outputs of many sizes, some of several MB: the pool never holds more than its byte
    cap and entry count, and an output larger than the cap is never pooled."""
    block = randomize_bn(IGCV2Block(64, 64, 1, groups=(4, 16)))
    fused = optimize(block, "fused", example=torch.randn(1, 64, 8, 8))
    nat.release_buffers()
    limits = nat.pool_stats()
    outputs = passed = 0
    with torch.inference_mode():
        for side in [*range(6, 46), 180, 220, 260, 300, 180, 220]:
            fused(torch.randn(1, 64, side, side))
            outputs += 1
            passed += 64 * side * side * 4
            stats = nat.pool_stats()
            assert 0 < stats["entries"] <= stats["max_entries"]
            assert stats["bytes"] <= stats["max_bytes"]
        assert outputs > limits["max_entries"]
        assert passed > limits["max_bytes"]
        held = nat.pool_stats()["bytes"]
        side = int((limits["max_bytes"] / 4 / 64) ** 0.5) + 8  # one output over the cap
        fused(torch.randn(1, 64, side, side))
        assert nat.pool_stats()["bytes"] == held


def test_release_buffers_empties_the_pool_and_set_pool_switches_it(native_kernel, net):
    _, fused = net
    x = torch.randn(2, 16, 9, 9)
    with torch.inference_mode():
        expect = fused(x).clone()
        assert nat.pool_stats()["entries"] > 0
        nat.release_buffers()
        stats = nat.pool_stats()
        assert stats["entries"] == 0 and stats["bytes"] == 0
        native_kernel.set_pool(False)
        try:
            hits = _hits()
            for _ in range(3):
                fresh = fused(x)
                assert torch.equal(fresh, expect)
            stats = nat.pool_stats()
            assert stats["entries"] == 0 and stats["hits"] == hits and not stats["enabled"]
        finally:
            native_kernel.set_pool(True)
        fused(x)
        hits = _hits()
        pooled = fused(x)
        assert _hits() > hits
        assert torch.equal(pooled, expect) and pooled.stride() == fresh.stride()
        assert nat.pool_stats()["entries"] > 0


def test_pool_stats_and_release_buffers_without_the_kernel(monkeypatch):
    """Neither loads the kernel: zeros and a no-op when it is not loaded."""
    monkeypatch.setattr(nat, "_state", {})
    assert set(nat.pool_stats().values()) == {0}
    nat.release_buffers()
    assert "module" not in nat._state


@pytest.mark.slow
@pytest.mark.parametrize("path", ["compile", "export"])
def test_compiled_and_exported_models_reuse_the_pool_safely(native_kernel, net, path):
    """torch.compile's and torch.export's graphs call the custom operator: their outputs
    equal the eval model's over repeated calls, the pool is reused, a held output stays."""
    model, fused = net
    x1, x2 = torch.randn(1, 16, 12, 12), torch.randn(1, 16, 12, 12)
    if path == "compile":
        run = torch.compile(fused, fullgraph=True)
    else:
        run = torch.export.export(fused, (x1,)).module()
    with torch.inference_mode():
        y1 = run(x1)
        copy = y1.clone()
        before = _hits()
        for _ in range(3):
            expect = model(x2)
            assert (run(x2) - expect).abs().max().item() < 1e-4 * (expect.abs().max().item() + 1)
        assert _hits() > before
        assert torch.equal(y1, copy)
        assert (y1 - model(x1)).abs().max().item() < 1e-4 * (copy.abs().max().item() + 1)
