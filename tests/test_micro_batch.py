"""Micro-batches (igc.deploy.micro_batch and optimize(micro_batch=...)): the cache size read
from sysfs, the piece chosen from the largest activation, and outputs that do not depend on
the piece."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from conftest import randomize_bn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import block_forms, micro_batch, optimize
from igc.deploy.micro_batch import (
    DEFAULT_CACHE,
    MAX_PIECE,
    cache_bytes,
    choose,
    peak_activation_bytes,
    piece_for_threads,
    run_in_pieces,
)
from igc.errors import IGCError
from igc.models.registry import create_model


def _sysfs(root, sizes):
    for i, size in enumerate(sizes):
        (root / f"index{i}").mkdir()
        (root / f"index{i}" / "size").write_text(size + "\n")
    return root


def test_cache_bytes_reads_the_largest_level(tmp_path):
    root = _sysfs(tmp_path, ["32K", "32K", "1024K", "32768K"])
    assert cache_bytes(root) == 32 * 2**20


def test_cache_bytes_falls_back_when_unreadable(tmp_path):
    assert cache_bytes(tmp_path / "missing") == DEFAULT_CACHE
    assert cache_bytes(_sysfs(tmp_path, ["lots", "-3K"])) == DEFAULT_CACHE


@given(peak=st.integers(1, 2**32), cache=st.integers(1, 2**34))
def test_choose_fits_the_cache(peak, cache):
    piece = choose(peak, cache)
    assert 1 <= piece <= MAX_PIECE
    if piece > 1:
        assert piece * peak <= cache  # the pieces' activations fit
    if piece < MAX_PIECE:
        assert (piece + 1) * peak > cache  # and no more would


def test_peak_activation_is_the_largest_layer():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    peak = peak_activation_bytes(net, torch.randn(1, 3, 10, 10))
    assert peak == (8 * 100 + 8 * 100) * 4  # the ReLU: 8x10x10 in and out


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x * 2 + x.sum(dim=tuple(range(1, x.dim())), keepdim=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), piece=st.integers(1, 50))
def test_run_in_pieces_equals_one_call(n, piece):
    module = _Counting()
    x = torch.randn(n, 3, 2)
    out = run_in_pieces(module, x, piece)
    assert torch.equal(out, x * 2 + x.sum(dim=(1, 2), keepdim=True))
    size = piece_for_threads(piece, torch.get_num_threads())
    assert module.calls == [min(size, n - i) for i in range(0, n, size)]


@given(piece=st.integers(1, 300), threads=st.integers(1, 64))
def test_pieces_give_every_thread_whole_images(piece, threads):
    size = piece_for_threads(piece, threads)
    assert size % threads == 0 and size >= threads
    assert size <= max(piece, threads) and size > piece - threads


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "all", "1"])
def test_optimize_refuses_a_bad_micro_batch(bad):
    with pytest.raises(IGCError, match="micro_batch must be"):
        optimize(create_model("igcv2_fmnist"), micro_batch=bad)


def test_micro_batches_keep_outputs():
    model = randomize_bn(create_model("igcv2_fmnist")).eval()
    x = torch.randn(7, 1, 28, 28)
    whole = optimize(model, micro_batch=None)
    split = optimize(model, micro_batch=3)
    assert whole.micro_batch is None and split.micro_batch == 3
    with torch.inference_mode():
        ref = model(x)
        assert (split(x) - ref).abs().max() < 1e-4
        assert (split(x) - whole(x)).abs().max() < 1e-4


def test_auto_micro_batch_follows_the_activation_size(monkeypatch):
    """Activations grow with the map's area, so each doubling of the side gives about a
    quarter of the images per piece (a 4 MiB cache keeps the pieces below the cap)."""
    monkeypatch.setattr(micro_batch, "cache_bytes", lambda *a: 4 << 20)
    model = create_model("igcv2_fmnist").eval()
    pieces = [optimize(model, example=torch.randn(2, 1, s, s)).micro_batch
              for s in (28, 56, 112)]
    assert all(1 <= p < MAX_PIECE for p in pieces)
    assert all(3 <= big / small <= 5 for big, small in pairwise(pieces))
    assert optimize(model, example=torch.randn(2, 1, 28, 28), micro_batch=None
                    ).micro_batch is None


def test_export_sees_one_call():
    model = randomize_bn(create_model("igcv2_fmnist")).eval()
    split = optimize(model, "structured", micro_batch=1)
    x = torch.randn(3, 1, 28, 28)
    program = torch.export.export(split, (x,))
    with torch.inference_mode():
        assert (program.module()(x) - model(x)).abs().max() < 1e-4


def test_forms_are_priced_for_one_piece():
    model = create_model("igcv2_fmnist").eval()
    split = block_forms(optimize(model, batch=32, micro_batch=2))
    piece = block_forms(optimize(model, batch=2, micro_batch=None))
    whole = block_forms(optimize(model, batch=32, micro_batch=None))
    assert [r.predicted_s for r in split] == [r.predicted_s for r in piece]
    assert [r.predicted_s for r in split] != [r.predicted_s for r in whole]


def test_peak_counts_an_opaque_module_as_one_layer():
    inner = nn.Sequential(nn.Conv2d(2, 64, 1), nn.Conv2d(64, 2, 1))
    net = nn.Sequential(inner, nn.ReLU())
    x = torch.randn(1, 2, 4, 4)
    assert peak_activation_bytes(net, x) == (2 + 64) * 16 * 4  # inside: 2 -> 64 channels
    blocks = nn.Sequential(_Block(inner), nn.ReLU())
    assert peak_activation_bytes(blocks, x, opaque=(_Block,)) == (2 + 2) * 16 * 4


class _Block(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_no_pieces_off_the_cpu():
    from igc.deploy.optimize import _micro_batch

    model = create_model("igcv2_fmnist").eval()
    assert _micro_batch(model, None) is not None
    assert _micro_batch(model.to("meta"), None) is None  # a GPU runs the whole batch
