"""The native 1x1 convolution outside the blocks (igc.deploy.chain.pointwise): which
modules it takes, equal outputs over random shapes, and the PyTorch modules wherever the
native product does not run (two threads, tracing, export, dispatch modes)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import optimize
from igc.deploy.chain.pointwise import NativePointwise, fuse_pointwise, pointwise_parts
from igc.models.registry import create_model
from igc.runtime import num_threads


@pytest.mark.parametrize(("seq", "want"), [
    (nn.Sequential(nn.Conv2d(8, 16, 1), nn.Identity(), nn.ReLU6()), "relu6"),
    (nn.Sequential(nn.Conv2d(8, 16, 1, groups=2), nn.ReLU()), "relu"),
    (nn.Sequential(nn.Conv2d(8, 16, 1, bias=False)), None),
])
def test_the_folded_conv_act_patterns_are_taken(seq, want):
    found = pointwise_parts(seq)
    assert found is not None and found[0] is seq[0] and found[1] == want


@pytest.mark.parametrize("seq", [
    nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()),  # not 1x1
    nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.ReLU()),
    nn.Sequential(nn.Conv2d(8, 16, 1, padding=1), nn.ReLU()),
    nn.Sequential(nn.Conv2d(8, 16, 1, dilation=2), nn.ReLU()),
    nn.Sequential(nn.Conv2d(8, 16, 1), nn.SiLU()),  # an activation the kernel lacks
    nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16)),  # BN not folded
    nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU(), nn.ReLU()),
    nn.Sequential(nn.ReLU(), nn.Conv2d(8, 16, 1)),
    nn.Sequential(),
])
def test_other_modules_are_left_alone(seq):
    assert pointwise_parts(seq) is None


@settings(max_examples=25, deadline=None)
@given(cin_g=st.integers(1, 40), cout_g=st.integers(1, 40), groups=st.integers(1, 3),
       n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       act=st.sampled_from([None, nn.ReLU, nn.ReLU6]), channels_last=st.booleans(),
       seed=st.integers(0, 2**16))
def test_outputs_equal_the_modules(native_kernel, cin_g, cout_g, groups, n, h, w, act,
                                   channels_last, seed):
    torch.manual_seed(seed)
    mods = [nn.Conv2d(cin_g * groups, cout_g * groups, 1, groups=groups)]
    seq = nn.Sequential(*mods, *([act()] if act else [])).eval()
    conv, name = pointwise_parts(seq)
    native_form = NativePointwise(conv, name, seq)
    x = 3 * torch.randn(n, cin_g * groups, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), num_threads(1):
        want, got = seq(x), native_form(x)
    assert got.shape == want.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert (got - want).abs().max() <= 1e-5 * (1 + want.abs().max())


def test_the_native_product_runs_on_one_thread_only(native_kernel, monkeypatch):
    seq = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU()).eval()
    native_form = NativePointwise(seq[0], "relu", seq)
    x = torch.randn(2, 8, 5, 5)
    calls = []
    seq.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        with num_threads(1):
            native_form(x)
        assert calls == []  # the native product, not the modules
        with num_threads(2):
            native_form(x)
        assert calls == [1]  # oneDNN splits the work over threads; the product would not


def test_optimized_networks_use_it_and_equal_the_eval_model(native_kernel):
    model = create_model("igcv3_070").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode(), num_threads(1):
        want = model(x)
        for mode in ("fused", "auto"):
            fast = optimize(model, mode)
            assert isinstance(fast.model.final_conv, NativePointwise)
            assert (fast(x) - want).abs().max() < 1e-4 * (1 + want.abs().max())
    assert not isinstance(optimize(model, "grouped").model.final_conv, NativePointwise)


def test_export_and_tracing_see_the_modules(native_kernel):
    seq = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU6()).eval()
    net = nn.Sequential(nn.Identity(), seq)
    assert fuse_pointwise(net) == ["1"]
    x = torch.randn(1, 8, 4, 4)
    program = torch.export.export(net, (x,))
    assert "conv2d" in str(program.graph)
    with torch.inference_mode():
        assert torch.allclose(program.module()(x), seq(x), atol=1e-5)
    traced = torch.jit.trace(net, x)
    assert "aten::_convolution" in str(traced.inlined_graph)


def test_nothing_is_replaced_without_the_kernel(monkeypatch):
    from igc.deploy.chain import pointwise

    monkeypatch.setattr(pointwise, "native", lambda: None)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU()))
    assert fuse_pointwise(net) == [] and isinstance(net[0], nn.Sequential)
