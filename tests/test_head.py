"""The native head (igc.deploy.chain.head): the global average pool and the (grouped)
linear classifier equal the PyTorch modules over random shapes; which modules are taken;
the modules run wherever the native forms do not (batches over MAX_IMAGES, two threads,
export, tracing, gradients)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import optimize
from igc.deploy.chain.head import (
    MAX_IMAGES,
    NativeAvgPool,
    NativeLinear,
    fuse_head,
    is_avg_pool,
    linear_parts,
)
from igc.models.net import GroupClassifier, make_pool
from igc.models.registry import create_model
from igc.runtime import num_threads


def _close(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-5) -> bool:
    return got.shape == want.shape and bool(
        (got - want).abs().max() <= tol * (1 + want.abs().max()))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 300), h=st.integers(1, 9), w=st.integers(1, 9),
       channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_the_pool_is_the_mean_over_the_map(native_kernel, n, c, h, w, channels_last, seed):
    torch.manual_seed(seed)
    x = 5 + 3 * torch.randn(n, c, h, w)  # an offset: a wrong divisor shows
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pool = NativeAvgPool(make_pool("avg"))
    with torch.inference_mode():
        got = pool(x)
    assert _close(got, x.double().mean((2, 3)).float())


def _grouped_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       groups: int) -> torch.Tensor:
    """``x (N, K)``, ``weight (O, K/G)``: each group's outputs from its inputs, in float64."""
    xs = x.double().reshape(x.shape[0], groups, -1)
    ws = weight.double().reshape(groups, -1, weight.shape[1])
    return (torch.einsum("ngk,gok->ngo", xs, ws).reshape(x.shape[0], -1)
            + bias.double()).float()


@settings(max_examples=40, deadline=None)
@given(groups=st.sampled_from([1, 2, 4]), k=st.integers(1, 70), o=st.integers(1, 150),
       n=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_the_kernel_equals_a_grouped_linear_layer(native_kernel, groups, k, o, n, seed):
    from igc.deploy.chain.head import pack_linear

    torch.manual_seed(seed)
    weight, bias = torch.randn(o * groups, k), torch.randn(o * groups)
    x = torch.randn(n, k * groups)
    packed, padded = pack_linear(weight, bias, groups)
    got = native_kernel.linear(x, packed, padded, o * groups)  # any batch, four at a time
    assert _close(got, _grouped_reference(x, weight, bias, groups))


@settings(max_examples=25, deadline=None)
@given(groups=st.sampled_from([1, 2, 5]), k=st.integers(1, 40), o=st.integers(1, 90),
       n=st.integers(1, MAX_IMAGES + 2), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_the_module_equals_what_it_replaces(native_kernel, groups, k, o, n, bias, seed):
    torch.manual_seed(seed)
    if groups == 1:
        original: nn.Module = nn.Linear(k, o, bias=bias)
    else:
        original = GroupClassifier(k * groups, o * groups, (groups,))
    nn.init.normal_(original.weight)
    parts = linear_parts(original)
    assert parts is not None and parts[2] == groups
    native_form = NativeLinear(*parts, fallback=original)
    x = torch.randn(n, k * groups)
    with torch.inference_mode(), num_threads(1):
        assert _close(native_form(x), original(x))


def test_the_modules_run_where_the_native_forms_do_not(native_kernel):
    linear = nn.Linear(32, 10)
    native_form = NativeLinear(*linear_parts(linear), fallback=linear)
    calls = []
    linear.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        with num_threads(1):
            native_form(torch.randn(MAX_IMAGES, 32))
            assert calls == []  # native
            native_form(torch.randn(MAX_IMAGES + 1, 32))
            assert calls == [1]  # a batch bound by arithmetic: oneDNN's GEMM
        with num_threads(2):
            native_form(torch.randn(1, 32))
            assert calls == [1, 1]  # one thread only
    x = torch.randn(2, 32, requires_grad=True)
    with num_threads(1):
        native_form(x).sum().backward()  # the module: a gradient
    assert x.grad is not None and _close(x.grad, linear.weight.sum(0).expand(2, 32))


def test_which_modules_are_taken():
    assert is_avg_pool(make_pool("avg"))
    assert not is_avg_pool(make_pool("max"))
    assert not is_avg_pool(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(1)))
    assert linear_parts(nn.Linear(4, 3)) is not None
    assert linear_parts(nn.Linear(4, 3).double()) is None
    two_factor = GroupClassifier(8, 4, (2, 2))
    assert two_factor.pre is not None and linear_parts(two_factor) is None
    assert linear_parts(nn.Bilinear(4, 4, 3)) is None


@pytest.mark.parametrize("name", ["igcv2_c64_d20", "igcv3_070"])
def test_optimized_networks_use_it_and_equal_the_eval_model(native_kernel, name):
    model = create_model(name).eval()
    nn.init.normal_(model.classifier.weight)  # the zoo's 0.01 would hide a wrong head
    size = 32 if "c64" in name else 96
    with torch.inference_mode(), num_threads(1):
        for mode in ("fused", "auto"):
            fast = optimize(model, mode)
            assert isinstance(fast.model.global_pool, NativeAvgPool)
            assert isinstance(fast.model.classifier, NativeLinear)
            for n in (1, MAX_IMAGES + 1):
                x = torch.randn(n, 3, size, size)
                assert _close(fast(x), model(x), 1e-4)
    plain = optimize(model, "grouped")
    assert not isinstance(plain.model.classifier, NativeLinear)


def test_export_and_tracing_see_the_modules(native_kernel):
    net = nn.Sequential(nn.Conv2d(3, 8, 1), make_pool("avg"), nn.Linear(8, 5)).eval()
    assert fuse_head(net) == ["1", "2"]
    x = torch.randn(1, 3, 4, 4)
    program = torch.export.export(net, (x,))
    graph = str(program.graph)
    assert "linear" in graph and ("adaptive_avg_pool2d" in graph or "mean" in graph)
    with torch.inference_mode():
        assert _close(program.module()(x), net(x))
    traced = torch.jit.trace(net, x)
    assert "aten::linear" in str(traced.inlined_graph)


def test_nothing_is_replaced_without_the_kernel(monkeypatch):
    from igc.deploy.chain import head

    monkeypatch.setattr(head, "native", lambda: None)
    net = nn.Sequential(make_pool("avg"), nn.Linear(4, 2))
    assert fuse_head(net) == [] and type(net[1]) is nn.Linear


def test_the_kernels_refuse_bad_input_in_one_line(native_kernel):
    from igc.deploy.chain.head import pack_linear

    packed, bias = pack_linear(torch.randn(6, 4), torch.randn(6), 2)  # 2 groups of 4 -> 3
    with pytest.raises(RuntimeError, match="expected 8 input features, got 7"):
        native_kernel.linear(torch.randn(1, 7), packed, bias, 6)
    with pytest.raises(RuntimeError, match="bad packing"):
        native_kernel.linear(torch.randn(1, 8), packed, bias, 5)  # 5 outputs, 2 groups
    with pytest.raises(RuntimeError, match="2-d float32 CPU tensor"):
        native_kernel.linear(torch.randn(1, 8).double(), packed, bias, 6)
    with pytest.raises(RuntimeError, match="4-d float32 CPU tensor"):
        native_kernel.global_avg_pool(torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="empty map"):
        native_kernel.global_avg_pool(torch.randn(1, 3, 0, 4))


def test_strided_and_transposed_inputs_equal_the_modules(native_kernel):
    linear = nn.Linear(24, 10)
    native_form = NativeLinear(*linear_parts(linear), fallback=linear)
    x = torch.randn(24, 3).t()  # (3, 24), not contiguous
    pool = NativeAvgPool(make_pool("avg"))
    maps = torch.randn(2, 6, 10, 10)[:, :, ::2, 1::3]  # strided in both dimensions
    with torch.inference_mode(), num_threads(1):
        assert _close(native_form(x), linear(x))
        assert _close(pool(maps), maps.mean((2, 3)))
