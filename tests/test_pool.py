"""The global average pool over the NHWC view (igc.deploy.chain.pool): which modules it
takes, equal outputs over random shapes, and the original modules elsewhere."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import optimize
from igc.deploy.chain.pool import PixelMean, fuse_pool, is_global_pool
from igc.models.registry import create_model


def _pool(size=1, start=1, end=-1):
    return nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Flatten(start, end))


@pytest.mark.parametrize(("seq", "taken"), [
    (_pool(), True), (_pool((1, 1)), True),
    (_pool(2), False), (_pool((1, 2)), False), (_pool(start=0), False),
    (_pool(end=2), False), (nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(1)), False),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1)), False),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.ReLU()), False),
])
def test_only_the_global_average_pool_and_flatten_is_taken(seq, taken):
    assert is_global_pool(seq) is taken


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 70), h=st.integers(1, 9), w=st.integers(1, 9),
       channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_outputs_equal_the_modules(n, c, h, w, channels_last, seed):
    torch.manual_seed(seed)
    seq = _pool()
    mean = PixelMean(seq)
    x = 5 * torch.randn(n, c, h, w) + 3
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want, got = seq(x), mean(x)
    assert got.shape == want.shape == (n, c)
    assert (got - want).abs().max() <= 1e-5 * (1 + want.abs().max())


def test_optimized_networks_use_it_and_export_sees_the_modules():
    model = create_model("igcv3_070").eval()
    x = torch.randn(2, 3, 96, 96)
    fast = optimize(model, "fused")
    assert isinstance(fast.model.global_pool, PixelMean)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max() < 1e-4 * (1 + model(x).abs().max())
    assert not isinstance(optimize(model, "grouped").model.global_pool, PixelMean)
    net = nn.Sequential(nn.Identity(), _pool())
    assert fuse_pool(net) == ["1"]
    y = torch.randn(1, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    program = torch.export.export(net, (y,))
    assert "adaptive_avg_pool2d" in str(program.graph) or "mean" in str(program.graph)
    with torch.inference_mode():
        assert torch.allclose(program.module()(y), net(y), atol=1e-6)
