"""The cost model's price of whole blocks (:mod:`igc.deploy.chain.block_cost`) and
``optimize(mode="auto")``'s choice between the unfused forms and the fused kernel by it:
the prices match hand computations, the choice flips with the calibrated rates, and the
outputs equal the eval-mode block's whatever form is picked. No timing is asserted."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from igc.deploy import block_forms, latency, optimize
from igc.deploy import native as nat
from igc.deploy.chain import (
    BUILTIN,
    CostModel,
    FastChain,
    lower,
    move_permutations,
    split_segments,
)
from igc.deploy.chain.block_cost import (
    executed_macs,
    fused_seconds,
    merge_factor,
    spatial_seconds,
    unfused_seconds,
)
from igc.deploy.chain.fused import FusedChain, FusedUnsupported, fused_parts
from igc.deploy.chain.ops import ConvOp
from igc.deploy.chain.segments import Segment
from igc.layers import IGCV1Block, IGCV2Block, IGCV3Block, MobileNetV2Block, XceptionBlock
from igc.models.registry import create_model
from igc.sparsity.design import Design

#: The fused kernel priced as (almost) free, and as very slow; the rest as built in.
CHEAP = CostModel(fused_rate=1e17, fused_spatial_rate=1e17, source="test")
DEAR = CostModel(fused_rate=1e6, fused_spatial_rate=1e6, source="test")


def _conv(cin: int, cout: int, groups: int, k: int = 1, stride: int = 1) -> ConvOp:
    return ConvOp(torch.randn(cout, cin // groups, k, k), None, groups, stride, k // 2)


def test_executed_macs_count_the_zeros_of_joined_branches_and_padding():
    # 64 channels in branches of 8: each a half vector, no zeros
    assert merge_factor(8, 8) == 1
    assert executed_macs(_conv(64, 64, 8)) == (8 * 8 * 8, 8)  # the 512 true
    # branches of 4: pairs joined into 8-wide block-diagonal branches (twice the true)
    assert merge_factor(16, 4) == 2
    assert executed_macs(_conv(64, 64, 16)) == (8 * 8 * 8, 8)
    assert executed_macs(_conv(48, 48, 8)) == (8 * 8 * 6, 6)  # 6 outputs padded to 8
    assert executed_macs(_conv(64, 64, 4)) == (4 * 16 * 16, 16)  # branches of 16: exact
    assert executed_macs(_conv(32, 24, 2)) == (2 * 16 * 16, 16)  # 12 outputs padded to 16
    assert executed_macs(_conv(32, 32, 1)) == (32 * 32, 32)


def test_fused_price_matches_a_hand_computation():
    cost = CostModel(fused_rate=1e10, fused_full_branch=16.0, fused_spatial_rate=1e9,
                     memory_rate=1e15)
    # depthwise 3x3 then a dense 1x1, 32 channels, one 8x8 image: 64 output pixels
    parts = fused_parts([_conv(32, 32, 32, 3), _conv(32, 32, 1)])
    t = fused_seconds(cost, parts.pre, parts.spatial, parts.post, (1, 32, 8, 8))
    assert t == pytest.approx(64 * (9 * 32 / 1e9 + 32 * 32 / 1e10), rel=1e-9)
    # IGCV3-like, stride 2: pre 16 -> 32 in 2 branches of 8 inputs (half rate: 8/16),
    # post 32 -> 24 in 2 branches (12 outputs padded to 16); 128 input, 32 output pixels
    parts = fused_parts([_conv(16, 32, 2), _conv(32, 32, 32, 3, 2), _conv(32, 24, 2)])
    t = fused_seconds(cost, parts.pre, parts.spatial, parts.post, (2, 16, 8, 8))
    want = 128 * 256 / (1e10 * 0.5) + 32 * (9 * 32 / 1e9 + 512 / 1e10)
    assert t == pytest.approx(want, rel=1e-9)
    # memory-bound: the input read once, the output written once
    slow_memory = CostModel(fused_rate=1e17, fused_spatial_rate=1e17, memory_rate=1e7)
    t = fused_seconds(slow_memory, parts.pre, parts.spatial, parts.post, (2, 16, 8, 8))
    assert t == pytest.approx(4 * (128 * 16 + 32 * 24) / 1e7, rel=1e-9)


def test_unfused_price_adds_the_skip_and_each_pass():
    cost = CostModel(dense_rate=1e10, spatial_rate=1e9, memory_rate=1e12)
    ops = [_conv(32, 32, 32, 3), _conv(32, 32, 1)]
    parts = split_segments(move_permutations(ops))
    plain, kernels = unfused_seconds(cost, parts, (1, 32, 8, 8))
    assert kernels == ("dw3x3", "dense")
    depthwise = max(9 * 32 / 1e9, 4 * 64 / 1e12)
    dense = max(32 * 32 / 1e10, 4 * 64 / 1e12)
    assert plain == pytest.approx(64 * (depthwise + dense), rel=1e-9)
    skip, kernels = unfused_seconds(cost, parts, (1, 32, 8, 8), residual=True)
    assert kernels[-1] == "add"
    assert skip - plain == pytest.approx(64 * 12 * 32 / 1e12, rel=1e-6)


def _block(kind: str, c: int, stride: int) -> nn.Module:
    if kind == "igcv1":
        return IGCV1Block(c, c, stride, primary_branch=2, secondary_groups=2)
    if kind == "igcv2":
        return IGCV2Block(c, c, stride, groups=(2, 4), nonlinear=True)
    if kind == "igcv3":
        return IGCV3Block(c, c, stride, expansion=3, g1=2, g2=2)
    if kind == "mobilenetv2":
        return MobileNetV2Block(c, c, stride, expansion=2)
    return XceptionBlock(c, c, stride)


def _randomized(block: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return block.eval()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("igcv1", "igcv2", "igcv3", "mobilenetv2", "xception")),
       st.sampled_from((8, 12, 24)), st.sampled_from((1, 2)), st.sampled_from((1, 3)),
       st.integers(0, 2**16))
def test_auto_follows_the_fused_price_and_keeps_the_outputs(kind, c, stride, batch, seed):
    block = _randomized(_block(kind, c, stride), seed)
    x = torch.randn(batch, c, 7, 7, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = block.double()(x.double())
        block.float()
    available = nat.native() is not None
    for cost, fused in ((CHEAP, available), (DEAR, False)):
        fast = optimize(block, "auto", example=x, cost=cost)
        assert isinstance(fast.model.body, FusedChain) == fused, block_forms(fast)
        rows = block_forms(fast)
        assert {r.form == "fused" for r in rows} == {fused}
        if fused or cost is DEAR:  # priced, and the price shown with the form
            assert all(r.predicted_s is not None and r.predicted_s > 0 for r in rows)
            assert all("estimated" in r.reason for r in rows)
        with torch.inference_mode():
            got = fast(x)
        scale = reference.abs().max().item() + 1
        assert (got.double() - reference).abs().max().item() < 2e-5 * scale


def test_the_predicted_time_is_the_chosen_forms_price():
    block = _randomized(IGCV3Block(16, 16, expansion=3, g1=2, g2=2), 0)
    shape = (1, 16, 9, 9)
    parts = fused_parts(lower(block.body), residual=True)
    unfused, _ = unfused_seconds(DEAR, split_segments(move_permutations(lower(block.body))),
                                 shape, residual=True)
    fast = optimize(block, "auto", example=torch.randn(shape), cost=DEAR)
    assert isinstance(fast.model.body, FastChain)
    rows = block_forms(fast)
    assert rows and [r.predicted_s for r in rows] == [pytest.approx(unfused)] * len(rows)
    fused = fused_seconds(DEAR, parts.pre, parts.spatial, parts.post, shape, True)
    assert fused > unfused
    assert all(r.reason.startswith("not fused: estimated") for r in rows)


def test_the_veto_on_large_dense_products_over_many_pixels_stands():
    block = XceptionBlock(1024, 1024).eval()
    fast = optimize(block, "auto", example=torch.randn(32, 1024, 7, 7), cost=CHEAP)
    assert isinstance(fast.model.body, FastChain)
    assert "BLAS is faster" in block_forms(fast)[0].reason


def test_the_veto_does_not_apply_to_micro_batches():
    block = XceptionBlock(1024, 1024).eval()
    x = torch.randn(32, 1024, 14, 14)
    whole = optimize(block, "auto", example=x, cost=CHEAP, micro_batch=None)
    split = optimize(block, "auto", example=x, cost=CHEAP, micro_batch=8)
    assert "BLAS is faster" in block_forms(whole)[0].reason  # 6,272 pixels in one call
    assert "BLAS is faster" not in block_forms(split)[0].reason  # 1,568 per piece
    segments = fused_parts(lower(block.body)).segments
    assert CHEAP.fused_veto(segments, 1568) and not CHEAP.fused_veto(segments, 1568, True)


def test_unsupported_blocks_are_never_priced_fused():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    block = IGCV2Block(16, 16, groups=(2, 8), nonlinear=True, act_layer=Odd).eval()
    with pytest.raises(FusedUnsupported):
        fused_parts(lower(block.body))
    fast = optimize(block, "auto", example=torch.randn(1, 16, 5, 5), cost=CHEAP)
    assert not isinstance(fast.model.body, FusedChain)


def test_latency_ranking_prices_the_fused_form_where_the_kernel_is_available(monkeypatch):
    d = Design(64, (1, 8, 8))
    unfused, steps = latency.predict(d, size=8, cost=CHEAP, fused=False)
    assert steps == ("dw3x3", "dense")
    fused, steps = latency.predict(d, size=8, cost=CHEAP, fused=True)
    assert steps == ("fused",) and fused < unfused
    assert latency.predict(d, size=8, cost=DEAR, fused=True)[1] == ("dw3x3", "dense")
    monkeypatch.setattr(latency, "native", lambda: object())  # "available"
    ranking = latency.rank_latency([d, Design(64, (1, 4, 4, 4))], cost=CHEAP, size=8)
    assert all(r.kernels == ("fused",) for r in ranking.rows)
    assert not any("not available" in n for n in ranking.notes)
    monkeypatch.setattr(latency, "native", lambda: None)
    ranking = latency.rank_latency([d], cost=CHEAP, size=8)
    assert ranking.rows[0].kernels == ("dw3x3", "dense")
    assert any("not available" in n for n in ranking.notes)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 1 << 15),
       st.sampled_from((8.0, 32.0, 100.0)), st.booleans())
def test_a_dense_1x1_out_of_cache_is_priced_by_its_input_width(k, out, pixels, full, nchw):
    """Compute-bound (memory free): in cache every dense 1x1 runs at ``dense_rate``; out
    of cache one of ``k`` inputs at ``dense_rate * min(1, k / dense_full_branch)``, so a
    narrow one costs more per multiply-add than a wide one over the same pixels."""
    cost = CostModel(dense_rate=1e10, memory_rate=1e15, l2_bytes=1 << 16,
                     dense_full_branch=full)
    per_mac = [cost.estimate(Segment([_conv(n, out, 1)], torch.zeros(out)), pixels,
                             nchw)["dense"] / (n * out) for n in (k, 300)]
    big = pixels * 4 * (k + out) > 1 << 16
    assert per_mac[0] == pytest.approx(1 / (1e10 * (min(1.0, k / full) if big else 1.0)))
    if big and k < full:
        assert per_mac[0] > 1.01 * per_mac[1]


def test_mobilenetv2_stage_1_expansion_is_priced_slower_unfused_per_mac():
    """The block measured 4x slower unfused (docs/deployment.md): its 16 -> 96 1x1 over
    112x112 is priced at half the dense rate, its 96 -> 96 stride-2 depthwise at the
    strided rate; at 16x16 the same 1x1 is in cache and at the full rate."""
    seg = Segment([_conv(16, 96, 1)], torch.zeros(96))
    wide = Segment([_conv(64, 96, 1)], torch.zeros(96))
    cost = CostModel(memory_rate=1e15)
    narrow_rate = 16 * 96 / cost.estimate(seg, 112 * 112)["dense"]
    assert narrow_rate == pytest.approx(cost.dense_rate * 16 / cost.dense_full_branch)
    assert 64 * 96 / cost.estimate(wide, 112 * 112)["dense"] == pytest.approx(cost.dense_rate)
    assert 16 * 96 / cost.estimate(seg, 16 * 16)["dense"] == pytest.approx(cost.dense_rate)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.sampled_from((3, 5)), st.integers(2, 3))
def test_a_strided_depthwise_is_priced_at_the_strided_rate(c, k, stride):
    """Per output pixel: stride 1 at ``spatial_rate``, strided at ``strided_spatial_rate``,
    each times ``channel_major_spatial`` on NCHW; a grouped (not depthwise) one as before."""
    cost = CostModel(spatial_rate=8e9, strided_spatial_rate=2e9, channel_major_spatial=0.25,
                     memory_rate=1e15)
    plain = spatial_seconds(cost, _conv(c, c, c, k))
    strided = spatial_seconds(cost, _conv(c, c, c, k, stride))
    assert plain == pytest.approx(k * k * c / 8e9)
    assert strided == pytest.approx(k * k * c / 2e9)
    assert spatial_seconds(cost, _conv(c, c, c, k), True) == pytest.approx(k * k * c / 2e9)
    assert spatial_seconds(cost, _conv(c, c, c, k, stride), True) == \
        pytest.approx(k * k * c / 5e8)
    grouped = spatial_seconds(cost, _conv(2 * c, 2 * c, c, k, stride))  # not depthwise
    assert grouped == pytest.approx(spatial_seconds(cost, _conv(2 * c, 2 * c, c, k)))


def test_the_built_in_rates_price_strided_and_narrow_passes_slower():
    """The measured built-ins keep the rules' direction (docs/deployment.md)."""
    assert BUILTIN.strided_spatial_rate < BUILTIN.spatial_rate
    assert BUILTIN.channel_major_spatial < 1.0
    assert 1.0 < BUILTIN.dense_full_branch <= 64.0


@pytest.mark.skipif(nat.native() is None, reason="the native kernel is not available")
@pytest.mark.parametrize("batch", [1, 32])
def test_auto_fuses_mobilenetv2s_stage_1_block(batch):
    """Measured 1.4x (batch 1) and 5x (batch 32) slower unfused than fused; the pricing
    before the narrow-input and stride rules kept it unfused."""
    model = create_model("mobilenetv2_100").eval()
    old = CostModel(dense_full_branch=1.0, strided_spatial_rate=BUILTIN.spatial_rate)
    forms = {}
    for name, cost in (("new", BUILTIN), ("old", old)):
        rows = block_forms(optimize(model, "auto", batch=batch, cost=cost))
        forms[name] = {r.form for r in rows if r.block == "stages.1.0.body"}
    assert forms == {"new": {"fused"}, "old": {"dense"}}
