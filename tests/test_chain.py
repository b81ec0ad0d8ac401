"""The chain package: any elementwise activation, refusals in one line, blocks left as they
are, construction on any device and dtype, and the cost model as an object."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import LoweringError, block_forms, optimize
from igc.deploy.chain import (
    BUILTIN,
    FORMS,
    ActOp,
    Context,
    CostModel,
    FastChain,
    build_steps,
    elementwise,
    lower,
    run_ops,
)
from igc.layers import IGCBlock
from igc.layers.chain import FactorChain
from igc.sparsity import KernelProduct

TOL = 1e-4


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.6 - 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.6 - 0.3)
    return module.eval()


def _block(act_layer=None, norm_layer=None, channels: int = 16, sizes=(1, 4, 4)
           ) -> IGCBlock:
    """A non-linear IGCV2 block (activations after the 3x3 and at the end, shuffles after
    every factor) with the given layers."""
    product = KernelProduct.from_branch_sizes(channels, list(sizes), shuffle_last=True)
    acts = ["relu"] + [None] * (len(sizes) - 2) + ["relu"]
    return _randomize(IGCBlock(product, acts=acts, act_layer=act_layer,
                               norm_layer=norm_layer))


class Swish(nn.Module):
    """A user's own elementwise activation (not a torch.nn class)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


ACTIVATIONS = {
    "silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish, "tanh": nn.Tanh,
    "leaky": lambda: nn.LeakyReLU(0.1), "prelu1": nn.PReLU, "swish": Swish,
    "silu-inplace": lambda: nn.SiLU(inplace=True),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("mode", ["auto", *FORMS])
def test_any_elementwise_activation_is_lowered_and_shuffles_vanish(name, mode):
    block = _block(ACTIVATIONS[name])
    fast = optimize(block, mode)
    assert fast.kept == {}
    kinds = {type(m).__name__ for m in fast.modules()}
    assert "ChannelShuffle" not in kinds and "BatchNorm2d" not in kinds
    if mode != "grouped":
        assert "Permutation" not in kinds
    for batch in (1, 3):
        x = torch.randn(batch, 16, 7, 7)
        with torch.no_grad():
            expected = block(x)
        with torch.inference_mode():
            got = fast(x)
        assert (got - expected).abs().max() < TOL


def test_elementwise_recognition():
    for make in ACTIVATIONS.values():
        assert elementwise(make())
    assert not elementwise(nn.Softmax(dim=1))
    assert not elementwise(nn.PReLU(16))  # one parameter per channel
    assert not elementwise(nn.GroupNorm(2, 6))
    assert not elementwise(nn.Conv2d(6, 6, 1))


@pytest.mark.parametrize("layer, name", [
    (lambda c: nn.GroupNorm(4, c), "GroupNorm"),
    (lambda c: nn.BatchNorm2d(c, track_running_stats=False), "BatchNorm2d"),
    (lambda c: nn.InstanceNorm2d(c, affine=True), "InstanceNorm2d"),
])
def test_what_cannot_be_folded_is_refused_in_one_line_and_kept(layer, name):
    block = _block(norm_layer=layer)
    with pytest.raises(LoweringError, match=name) as info:
        FastChain(block.body)
    assert "\n" not in str(info.value)
    net = nn.Sequential(_block(), block, _block(nn.SiLU)).eval()
    fast = optimize(net)
    assert list(fast.kept) == ["1.body"]
    rows = block_forms(fast)
    kept = [r for r in rows if r.form == "kept"]
    assert [r.block for r in kept] == ["1.body"] and name in kept[0].reason
    assert {r.block for r in rows} == {"0.body", "1.body", "2.body"}
    assert kept[0].kind == "IGCBlock"
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        assert (fast(x) - net(x)).abs().max() < TOL


def test_non_elementwise_activation_is_kept():
    block = _block(lambda: nn.Softmax(dim=1))
    fast = optimize(block)
    assert "Softmax" in fast.kept["body"]
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        assert (fast(x) - block(x)).abs().max() < TOL


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([(8, (1, 2, 4)), (12, (1, 3, 4)), (16, (1, 4, 4)), (18, (2, 3, 3)),
                        (24, (1, 2, 3, 4))]),
       st.sampled_from(sorted(ACTIVATIONS)), st.sampled_from(["auto", *FORMS, "small-dense"]),
       st.integers(1, 3), st.integers(3, 7), st.booleans(), st.integers(0, 2**16))
def test_random_chains_equal_their_lowering(spec, act, mode, batch, size, last, seed):
    """Random widths, depths, activations, batch and map sizes: the chain, its lowering in
    float64 (the reference) and its inference modules agree."""
    channels, sizes = spec
    torch.manual_seed(seed)
    product = KernelProduct.from_branch_sizes(channels, list(sizes), shuffle_last=last)
    acts = [None if i % 2 else "relu" for i in range(len(sizes))]
    chain = _randomize(FactorChain(product, acts=acts, act_layer=ACTIVATIONS[act]), seed)
    x = torch.randn(batch, channels, size, size, dtype=torch.float64)
    reference = run_ops(lower(chain, torch.float64), x)
    with torch.no_grad():
        assert (chain(x.float()).double() - reference).abs().max() < TOL
    steps, _ = build_steps(lower(chain), mode, Context())
    for fmt in (torch.contiguous_format, torch.channels_last):
        with torch.inference_mode():
            got = steps(x.float().contiguous(memory_format=fmt))
        assert (got.double() - reference).abs().max() < TOL


def test_modules_follow_the_chain_dtype():
    block = _block(nn.GELU).double()
    fast = optimize(block, "structured")
    assert {p.dtype for p in fast.parameters()} == {torch.float64}
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        assert (fast(x) - block(x)).abs().max() < 1e-10


def test_fast_chain_keeps_no_lowering_state():
    fast = FastChain(_block().body, "auto", input_shape=(4, 16, 8, 8))
    assert set(vars(fast)) >= {"forms", "product", "stride"}
    assert "segments" not in vars(fast)
    assert all(isinstance(op, ActOp) or op is not None for op in lower(_block().body))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
@pytest.mark.parametrize("mode", ["auto", *FORMS, "measure"])
def test_cuda_construction_and_parity(mode):
    device = torch.device("cuda")
    net = nn.Sequential(_block(), _block(nn.SiLU), _block(nn.Hardswish)).eval().to(device)
    example = torch.randn(2, 16, 8, 8, device=device)
    fast = optimize(net, mode, example=example)
    assert {p.device.type for p in fast.parameters()} == {"cuda"}
    assert {b.device.type for b in fast.buffers()} <= {"cuda"}
    for batch in (1, 3):
        x = torch.randn(batch, 16, 8, 8, device=device)
        with torch.no_grad():
            expected = net(x)
        with torch.inference_mode():
            assert (fast(x) - expected).abs().max() < TOL


def test_cost_model_drives_the_choice():
    block = _block(channels=64, sizes=(1, 8, 8))
    # branches at the full rate: the structured form's 4x fewer multiply-adds win (the
    # fused kernel priced out, so that the segment's own form is chosen)
    no_fused = {"fused_rate": 1e6, "fused_spatial_rate": 1e6}
    slow_dense = CostModel(dense_rate=1e7, memory_rate=1e15, full_rate_branch=1.0,
                           max_branch_efficiency=1.0, **no_fused)
    fast_dense = CostModel(dense_rate=1e16, memory_rate=1e6, **no_fused)
    assert {r.form for r in block_forms(optimize(block, cost=slow_dense))} == {"structured"}
    assert {r.form for r in block_forms(optimize(block, cost=fast_dense))} == {"dense"}
    assert CostModel() == BUILTIN and not BUILTIN.calibrated
    with pytest.raises(ValueError, match="dense_rate"):
        CostModel(dense_rate=-1.0)
    with pytest.raises(ValueError, match="max_branch_efficiency"):
        CostModel(max_branch_efficiency=float("nan"))


@pytest.mark.parametrize("flag", ["torchscript", "dynamo"])
def test_tracing_sees_either_onnx_exporters_flag(monkeypatch, flag):
    """``tracing()`` reads the two flags ``torch.onnx.is_in_onnx_export`` reads (directly:
    the function re-imports their modules on every call); both are seen, and so is the
    public function where the flags moved."""
    from igc.deploy.chain import modules

    assert not modules.tracing()
    found = modules._onnx_flags()
    if found is None:
        pytest.skip("this torch keeps the ONNX export flags elsewhere")
    flags, state = found
    if flag == "torchscript":
        monkeypatch.setattr(state, "in_onnx_export", True)
    else:
        monkeypatch.setattr(flags, "_is_onnx_exporting", True)
    assert modules.tracing() and torch.onnx.is_in_onnx_export()
