"""The native stem (igc.deploy.chain.stem): which first convolutions it takes, equal
outputs over random shapes, NCHW in and NHWC out, and the PyTorch modules wherever the
kernel does not run."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import optimize
from igc.deploy.chain.run import FusedRun
from igc.deploy.chain.stem import NativeStem, fuse_stem, stem_parts
from igc.layers import IGCV3Block
from igc.models.registry import create_model
from igc.runtime import num_threads


@pytest.fixture(scope="module")
def lanes(native_kernel):
    return native_kernel.simd_width()


def _stem(cin=3, cout=32, k=3, stride=2, pad=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), nn.Identity(),
                         *([act()] if act else [])).eval()


@pytest.mark.parametrize("seq", [
    _stem(cin=5),  # not an image
    _stem(cout=200),  # more outputs than the kernel holds
    nn.Sequential(nn.Conv2d(3, 32, (3, 5), 2, 1)),
    nn.Sequential(nn.Conv2d(3, 32, 3, (1, 2), 1)),
    nn.Sequential(nn.Conv2d(3, 32, 3, 2, (1, 0))),
    nn.Sequential(nn.Conv2d(3, 32, 3, 2, 2, dilation=2)),
    nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, padding_mode="reflect")),
    nn.Sequential(nn.Conv2d(4, 32, 3, 2, 1, groups=2)),
    nn.Sequential(nn.Conv2d(3, 32, 3, 1, "same")),
    _stem(act=nn.SiLU),
])
def test_other_first_convolutions_are_left_alone(seq):
    assert stem_parts(seq, 16) is None


@settings(max_examples=40, deadline=None)
@given(cin=st.integers(1, 4), cout=st.integers(1, 64), k=st.integers(1, 5),
       stride=st.integers(1, 3), pad=st.integers(0, 2), extra=st.integers(0, 20),
       n=st.integers(1, 3), act=st.sampled_from([None, nn.ReLU, nn.ReLU6]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_outputs_equal_the_modules(lanes, cin, cout, k, stride, pad, extra, n, act, threads,
                                   seed):
    cout = min(cout, 4 * lanes)
    torch.manual_seed(seed)
    seq = _stem(cin, cout, k, stride, pad, act)
    found = stem_parts(seq, lanes)
    assert found is not None
    native_form = NativeStem(*found, seq, lanes)
    side = max(1, k - 2 * pad) + extra
    x = 3 * torch.randn(n, cin, side, side + seed % 3)
    with torch.inference_mode(), num_threads(threads):
        want, got = seq(x), native_form(x)
    assert got.shape == want.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert (got - want).abs().max() <= 1e-5 * (1 + want.abs().max())


def test_zoo_networks_read_nchw_and_equal_the_eval_model(lanes):
    model = create_model("igcv3_070").eval()
    x = torch.randn(2, 3, 96, 96)
    fast = optimize(model, "fused")
    stem = fast.model.stem  # a NativeStem, or one in a kernel call with the first block
    assert isinstance(stem.stem if isinstance(stem, FusedRun) else stem, NativeStem)
    assert fast.nchw_input
    assert fast.input_memory_format(2) == torch.contiguous_format
    with torch.inference_mode():
        want = model(x)
        for given_x in (x, x.contiguous(memory_format=torch.channels_last)):
            assert (fast(given_x) - want).abs().max() < 1e-4 * (1 + want.abs().max())
    plain = optimize(model, "grouped")
    assert not isinstance(plain.model.stem, NativeStem) and not plain.nchw_input
    assert plain.input_memory_format(2) == torch.channels_last
    contiguous = optimize(model, "fused", layout="contiguous")
    assert not isinstance(contiguous.model.stem, NativeStem)


def test_export_sees_the_modules(lanes):
    seq = _stem()
    net = nn.Sequential(seq)
    assert fuse_stem(net)
    x = torch.randn(1, 3, 16, 16)
    program = torch.export.export(net, (x,))
    assert "conv2d" in str(program.graph)
    with torch.inference_mode():
        assert torch.allclose(program.module()(x), seq(x), atol=1e-5)


def test_only_the_first_convolution_and_only_an_image(lanes):
    block_first = nn.Sequential(IGCV3Block(8, 8), _stem(cin=8))
    assert not fuse_stem(optimize(block_first, "fused").model)
    wide = nn.Sequential(_stem(cin=6), _stem(cin=32))
    assert not fuse_stem(wide)
    two = nn.Sequential(_stem(), _stem(cin=32, cout=3), _stem(cin=3))
    assert fuse_stem(two)
    assert isinstance(two[0], NativeStem) and not isinstance(two[2], NativeStem)


def test_nothing_is_replaced_without_the_kernel(monkeypatch):
    from igc.deploy.chain import stem

    monkeypatch.setattr(stem, "native", lambda: None)
    net = nn.Sequential(_stem())
    assert not fuse_stem(net) and isinstance(net[0], nn.Sequential)


def test_gradients_through_the_stem_come_from_the_modules(lanes):
    seq = _stem()
    native_form = NativeStem(*stem_parts(seq, lanes), seq, lanes)
    x = torch.randn(1, 3, 12, 12, requires_grad=True)
    native_form(x).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    seq(x2).sum().backward()
    assert torch.allclose(x.grad, x2.grad)


def test_kept_padding_is_zero_after_another_geometry_of_the_same_padded_size(lanes):
    """The kernel keeps its zero-padded planes between calls: an 11x11 image with padding
    1 and a 9x9 one with padding 2 have the same padded size (13x13) but different
    margins; the second must not read the first's pixels as padding (found by the
    hypothesis test above: it failed only when such a call came first)."""
    torch.manual_seed(0)
    wide, narrow = _stem(3, 8, 3, 1, 1, None), _stem(3, 8, 5, 1, 2, None)
    first = NativeStem(*stem_parts(wide, lanes), wide, lanes)
    second = NativeStem(*stem_parts(narrow, lanes), narrow, lanes)
    with torch.inference_mode(), num_threads(1):
        first(torch.randn(1, 3, 11, 11) + 10)
        x = torch.randn(1, 3, 9, 9)
        assert (second(x) - narrow(x)).abs().max() < 1e-4
