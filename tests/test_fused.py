"""The fused form (``optimize(mode="fused")``): one native kernel call per IGC block, equal
to the eval-mode block over random shapes, strides, widths, loose designs, batch sizes and
thread counts; the custom operator under torch.library checks and torch.export; refusals
and fallbacks in one line. The native build runs once per session (``native_kernel``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_helpers import Record  # tests/ is the tests' folder
from kernel_helpers import randomize as _randomize
from torch import nn

from igc.deploy import block_forms, optimize
from igc.deploy import native as nat
from igc.deploy.chain import BUILTIN, FastChain, lower
from igc.deploy.chain.fused import FusedChain, FusedPlan, FusedUnsupported, pack_segment
from igc.errors import IGCError
from igc.layers import (
    DeepRootsBlock,
    IGCV1Block,
    IGCV2Block,
    IGCV3Block,
    MobileNetV2Block,
    XceptionBlock,
)
from igc.runtime import num_threads

ROOT = Path(__file__).resolve().parents[1]


def _make(kind: str, cin: int, cout: int, stride: int, groups: tuple[int, int]) -> nn.Module:
    """A block of the family; ``groups`` are branch counts of the 1x1 factors (they need
    not multiply out to the width: loose designs)."""
    if kind == "igcv1":
        return IGCV1Block(cin, cin, stride, primary_branch=2, secondary_groups=2)
    if kind in ("igcv2", "igcv2nl"):
        return IGCV2Block(cin, cout, stride, groups=groups, nonlinear=kind == "igcv2nl")
    if kind == "igcv3":
        return IGCV3Block(cin, cout, stride, expansion=3, g1=groups[0], g2=groups[1])
    if kind == "mobilenetv2":
        return MobileNetV2Block(cin, cout, stride, expansion=3)
    if kind == "deeproots":  # a group 3x3 with cin/2 channels per group
        return DeepRootsBlock(cin, cin, stride, groups=2)
    return XceptionBlock(cin, cout, stride, nonlinear=kind == "mobilenetv1")


def _check(block: nn.Module, x: torch.Tensor, threads: int = 1, tile_rows: int = 0
           ) -> nn.Module:
    """optimize(block, "fused") equals the block's eval output (float64 reference);
    ``tile_rows`` > 0 replaces the kernel's rows per tile (several tiles per band: the
    rolling buffer of input rows)."""
    fused = optimize(block, "fused", example=x)
    chains = [m for m in fused.modules() if isinstance(m, FusedChain)]
    assert chains, block_forms(fused)
    if tile_rows:
        for chain in chains:
            chain.config[9] = tile_rows
    with torch.no_grad():
        reference = block.double()(x.double())
        block.float()
    with num_threads(threads), torch.inference_mode():
        got = fused(x)
    assert got.shape == reference.shape
    scale = reference.abs().max().item() + 1
    assert (got.double() - reference).abs().max().item() < 2e-5 * scale
    return fused


WIDTHS = (6, 10, 12, 36, 100)
KINDS = ("igcv1", "igcv2", "igcv2nl", "igcv3", "xception", "mobilenetv1", "mobilenetv2",
         "deeproots")


def _with_switch(fused, x, switch, off, on) -> tuple[torch.Tensor, torch.Tensor]:
    """``fused(x)`` with a native kernel switch set to ``off`` (then set back to ``on``,
    also on error), and with it ``on``."""
    switch(off)
    try:
        with torch.inference_mode():
            other = fused(x)
    finally:
        switch(on)
    with torch.inference_mode():
        return other, fused(x)


def _assert_same_with_switch(fused, x, switch, off, on) -> None:
    """``fused(x)`` is bit-identical with a native kernel switch set to ``off``."""
    other, want = _with_switch(fused, x, switch, off, on)
    assert torch.equal(want, other)


def _assert_close_with_switch(fused, x, switch, off, on) -> None:
    """``fused(x)`` equals, to rounding, its output with a native kernel switch at ``off``."""
    other, want = _with_switch(fused, x, switch, off, on)
    assert (other - want).abs().max() <= 1e-5 * (1 + want.abs().max())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS), st.sampled_from(WIDTHS), st.sampled_from(WIDTHS),
       st.sampled_from((1, 2)), st.sampled_from(((2, 2), (2, 3), (3, 2), (1, 2))),
       st.sampled_from((1, 2, 5)), st.integers(1, 9), st.integers(1, 9),
       st.sampled_from((1, 2)), st.sampled_from((0, 1, 2, 3)), st.integers(0, 2**16))
def test_random_blocks_equal_the_eval_model(native_kernel, kind, cin, cout, stride, groups,
                                            batch, h, w, threads, tile_rows, seed):
    """Random families, widths not divisible by the SIMD width, strides 1 and 2, strict
    and loose designs, odd map sizes, batches 1-5, one and two threads, one to three
    output rows per tile or the default."""
    if kind in ("igcv1", "deeproots"):
        cin = cin + cin % 2
    if kind in ("igcv2", "igcv2nl") and (cin % groups[0] or cin % groups[1]
                                         or cout % groups[1]):
        groups = (2, 2) if cin % 2 == 0 and cout % 2 == 0 else (1, 1)
    if kind == "igcv3" and (cin % groups[0] or (3 * cin) % groups[0]
                            or (3 * cin) % groups[1] or cout % groups[1]):
        groups = (1, 1)
    torch.manual_seed(seed)
    block = _randomize(_make(kind, cin, cout, stride, groups), seed)
    _check(block, torch.randn(batch, cin, h, w), threads, tile_rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("igcv3", "mobilenetv2", "igcv2")), st.sampled_from((10, 16, 36)),
       st.sampled_from((1, 2)), st.integers(1, 20), st.integers(0, 2**16))
def test_every_depthwise_pass_gives_the_same_result(native_kernel, kind, cin, stride, w,
                                                    seed):
    """The 3x3 pass with its input vectors pinned in registers (the default on the ring),
    with the loads folded (``set_dw_variant(2)``) and with one output row per register
    block (``set_dw_variant(3)``; two by default on AVX-512, here tiles of 1-5 rows) bit
    for bit, and the generic loop (``set_dw_variant(1)``) to rounding."""
    block = _randomize(_make(kind, cin, cin, stride, (2, 2)), seed)
    x = torch.randn(2, cin, 5, w)
    fused = _check(block, x, tile_rows=1 + seed % 5)
    _assert_same_with_switch(fused, x, native_kernel.set_dw_variant, 2, 0)
    _assert_same_with_switch(fused, x, native_kernel.set_dw_variant, 3, 0)
    _assert_close_with_switch(fused, x, native_kernel.set_dw_variant, 1, 0)


def test_wide_branches_are_stored_in_panels():
    from igc.deploy.chain.fused import PANEL, PANEL_FROM, _paneled

    narrow = torch.randn(2, 5, PANEL_FROM)
    assert _paneled(narrow) is narrow
    wide = torch.randn(2, 5, 2 * PANEL + 48)  # two whole panels and a narrower one
    flat = _paneled(wide).reshape(2, -1)
    starts = (0, 5 * PANEL, 10 * PANEL)
    for p, start in zip((0, PANEL, 2 * PANEL), starts):
        width = min(PANEL, wide.shape[2] - p)
        panel = flat[:, start:start + 5 * width].reshape(2, 5, width)
        assert torch.equal(panel, wide[:, :, p:p + width])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from((90, 100, 150, 300)), st.sampled_from((1, 2)), st.integers(1, 40),
       st.integers(0, 2**16))
def test_paneled_weights_give_the_same_products_in_every_variant(native_kernel, cout, groups,
                                                                 pixels, seed):
    """Branches of 90-300 outputs (up to 150 per branch: rows or panels, passes of 4
    vectors within a panel): the micro-kernel equals the eval model, and ATen's GEMM per
    branch (``set_variant(-1)``, which reads the panels back into rows) equals it too."""
    torch.manual_seed(seed)
    block = _randomize(IGCV3Block(32, cout, 1, expansion=3, g1=2, g2=groups), seed)
    x = torch.randn(1, 32, 2, pixels)
    fused = _check(block, x)
    _assert_close_with_switch(fused, x, native_kernel.set_variant, -1, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("igcv2", "mobilenetv1", "xception")), st.sampled_from((16, 32, 48)),
       st.sampled_from((1, 2)), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12),
       st.sampled_from((1, 2)), st.sampled_from((0, 1, 2)), st.integers(0, 2**16))
def test_blocks_without_a_pre_segment_read_their_input_in_place(
        native_kernel, kind, cin, stride, batch, h, w, threads, tile_rows, seed):
    """Blocks whose depthwise convolution reads the block's input over whole vectors
    (``spatial_direct``: interior columns in place, border columns from a padded copy,
    maps narrower than the kernel all border) equal the eval model, and the ring copy
    (``set_direct(0)``) bit for bit, with 1-3 images, 1 or 2 threads and 1-2 rows per
    tile."""
    block = _randomize(_make(kind, cin, 2 * cin, stride, (2, 2)), seed)
    x = torch.randn(batch, cin, h, w)
    fused = _check(block, x, threads, tile_rows)
    chain = next(m for m in fused.modules() if isinstance(m, FusedChain))
    assert chain.config[10] == 0 and chain.config[0] % native_kernel.simd_width() == 0
    with num_threads(threads):
        _assert_same_with_switch(fused, x, native_kernel.set_direct, 0, 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 8), st.sampled_from((2, 4, 8)), st.sampled_from((1, 2)),
       st.booleans(), st.integers(1, 30), st.integers(1, 3), st.integers(0, 2**16))
def test_narrow_branches_run_on_half_vectors(native_kernel, outs, groups, stride, nonlinear,
                                             pixels, batch, seed):
    """IGCV2 blocks whose 1x1 branches have 1-8 outputs (IGCV2's branches of 8 channels,
    and narrower ones joined up to 8): the kernel's half-vector product
    (``run_factor_half``), with the activation, the residual and the pixel tail (1-30
    pixels per row against blocks of 12), equals the eval model, and equals the
    full-vector product with the upper lanes masked (``set_half(0)``) bit for bit."""
    width = outs * groups
    block = _randomize(IGCV2Block(width, width, stride, groups=(groups, groups),
                                  nonlinear=nonlinear), seed)
    x = torch.randn(batch, width, 3, pixels)
    fused = _check(block, x)
    chain = next(m for m in fused.modules() if isinstance(m, FusedChain))
    n = chain.config[10] + chain.config[12]
    assert any(chain.config[17 + 4 * i] <= 8 for i in range(n))  # some factor is narrow
    _assert_same_with_switch(fused, x, native_kernel.set_half, 0, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("xception", "mobilenetv1", "mobilenetv2")), st.integers(1, 40),
       st.integers(1, 40), st.sampled_from((1, 2)), st.integers(1, 7), st.integers(1, 41),
       st.sampled_from((1, 2)), st.sampled_from((0, 1, 2, 3)), st.integers(0, 2**16))
def test_depthwise_pass_over_widths_and_map_widths(native_kernel, kind, cin, cout, stride, h,
                                                   w, batch, tile_rows, seed):
    """The register-blocked depthwise 3x3 pass (several output pixels per block and the
    pixel tail): channel widths 1-40 (around the 8- and 16-float vectors), map widths
    1-41 (odd ones at stride 2), no activation, ReLU and ReLU6 after it, and the ring of
    input rows over one to three output rows per tile."""
    torch.manual_seed(seed)
    block = _randomize(_make(kind, cin, cout, stride, (1, 1)), seed)
    _check(block, torch.randn(batch, cin, h, w), 1 + seed % 2, tile_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("igcv3", "mobilenetv2", "igcv2nl", "xception")),
       st.sampled_from((1, 2, 4)), st.sampled_from((1, 2, 4)), st.integers(1, 12),
       st.integers(1, 170), st.integers(1, 40), st.integers(1, 60), st.integers(1, 70),
       st.integers(0, 2**16))
def test_segment_products_equal_the_segment_matrix(native_kernel, kind, g1, g2, a, b, c,
                                                   pixels, tile, seed):
    """The 1x1 micro-kernels alone (the native ``segment`` entry) on every segment of
    random blocks: branch widths of 1 to 10 SIMD vectors and not multiples of them (every
    register-blocking path and its masked last vector), 1 to 70 pixels in tiles of any
    size (the pixel remainders), identity, ReLU and ReLU6 epilogues, index tables and
    trailing permutations; against the segment's multiplied-out matrix in float64."""
    torch.manual_seed(seed)
    cin, hidden, cout = g1 * a, g1 * g2 * b, g2 * c
    if kind == "igcv3":
        block = IGCV3Block(cin, cout, hidden=hidden, g1=g1, g2=g2)
    elif kind == "mobilenetv2":
        block = MobileNetV2Block(cin, cout, hidden=hidden)
    elif kind == "igcv2nl":
        block = IGCV2Block(hidden, hidden * g2 // g1, groups=(g1, g2), nonlinear=True)
    else:
        block = XceptionBlock(cin, hidden, nonlinear=True)
    _check_segments(native_kernel, _randomize(block, seed), pixels, tile)


def _check_segments(kernel, block: nn.Module, pixels: int, tile: int) -> None:
    """Each 1x1 segment of ``block``'s fused plan, run by the native ``segment`` entry on
    random ``(pixels, C_in)`` input, equals the segment's multiplied-out matrix."""
    for seg in FusedPlan(lower(block.body)).segments:
        params, config = pack_segment(seg)
        x = torch.randn(pixels, seg.in_channels)
        with torch.no_grad():
            ref = x.double() @ seg.dense_matrix().double().t() + seg.bias.double()
        if seg.act is not None:
            ref = ref.clamp(0, 6 if seg.act == "relu6" else None)
        got = kernel.segment(x, params, config, tile, 0)
        assert got.shape == ref.shape
        assert (got.double() - ref).abs().max().item() < 2e-5 * (ref.abs().max().item() + 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from((1, 2, 3, 4, 8)), st.sampled_from((1, 2, 3, 4, 8)), st.integers(1, 6),
       st.integers(1, 9), st.integers(1, 17), st.sampled_from((1, 2)), st.integers(1, 9),
       st.integers(1, 9), st.integers(0, 2**16))
def test_narrow_branches_around_8_and_16_outputs(native_kernel, g1, g2, a, b, c, stride, h,
                                                 w, seed):
    """Branches of 1-17 outputs (the 8-lane path for at most 8, narrower ones joined up
    to 8, the 16-lane path with its masked last vector above): the segments alone over
    1-40 pixels in tiles of 1-12, and the whole block (residual when the shapes allow)
    against the eval model."""
    torch.manual_seed(seed)
    block = _randomize(IGCV3Block(g1 * a, g2 * c, stride, hidden=g1 * g2 * b, g1=g1, g2=g2),
                       seed)
    _check_segments(native_kernel, block, 1 + seed % 40, 1 + seed % 12)
    _check(block, torch.randn(1 + seed % 2, g1 * a, h, w), 1 + seed % 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from((1, 2, 4, 8)), st.integers(1, 3), st.sampled_from((16, 32, 48)),
       st.sampled_from((1, 2)), st.integers(1, 9), st.integers(1, 9), st.integers(1, 3),
       st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_interleave_of_8_branches_runs_as_transposes(native_kernel, g1, a, o, stride, h, w,
                                                     batch, nonlinear, skip, seed):
    """IGCV2's trailing shuffle after a factor of 8 branches of a multiple of 16 outputs
    (the kernel's register transposes instead of gathers): odd map sizes, strides 1 and 2,
    batches 1-3, one and two threads, with and without the residual (a block made to
    skip), against the eval model and, exactly, against the same kernel with gathers."""
    cin, cout = 8 * g1 * a, 8 * o
    if skip:
        cin, stride = cout, 1
    torch.manual_seed(seed)
    block = IGCV2Block(cin, cout, stride, groups=(g1, 8), nonlinear=nonlinear)
    block.skip = skip
    block = _randomize(block, seed)
    tail = FusedPlan(lower(block.body)).params[-1]
    c = torch.arange(cout)
    assert torch.equal(tail.long(), (c % 8) * o + c // 8)  # the pattern the kernel detects
    x = torch.randn(batch, cin, h, w)
    fused = _check(block, x, 1 + seed % 2, seed % 3)
    _assert_same_with_switch(fused, x, native_kernel.set_variant, -2, 0)  # the gather path


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("igcv2", "igcv3", "mobilenetv1", "mobilenetv2")),
       st.sampled_from((256, 512)), st.sampled_from((1, 2)), st.integers(1, 7),
       st.integers(1, 9), st.integers(1, 2), st.integers(0, 2**16))
def test_padded_pixel_strides_at_widths_of_whole_kib(native_kernel, kind, c, stride, h, w,
                                                     batch, seed):
    """Channel counts that are multiples of 256 (pixel strides of whole KiB, padded by a
    cache line in the ring, the spatial result and the scratch rows): against the eval
    model and, exactly, against the same kernel without the padding; residual blocks
    where the shapes allow."""
    torch.manual_seed(seed)
    if kind == "igcv3":
        block = IGCV3Block(c // 4, c // 4, stride, hidden=c, g1=2, g2=2)
    elif kind == "mobilenetv2":
        block = MobileNetV2Block(c // 4, c // 4, stride, hidden=c)
    else:
        block = _make(kind, c, c, stride, (8, 8))
    block = _randomize(block, seed)
    cin = c // 4 if kind in ("igcv3", "mobilenetv2") else c
    x = torch.randn(batch, cin, h, w)
    fused = _check(block, x, 1 + seed % 2, seed % 3)
    _assert_same_with_switch(fused, x, native_kernel.set_stride_pad, 0, 1)  # no padding


@pytest.mark.parametrize("threads", [1, 2])
def test_buffers_kept_between_blocks_are_clean_where_read(native_kernel, threads):
    """The per-thread input ring is only zeroed where nothing writes (padding pixels,
    lanes outside the channels, the zero row): blocks of other widths, paddings and
    group sizes run one after another on large inputs, so a lane left from the block
    before would show in the next one's output."""
    blocks = [_make("igcv3", 100, 36, 1, (2, 2)), _make("mobilenetv1", 36, 12, 1, (1, 1)),
              _make("igcv1", 12, 12, 2, (1, 1)), _make("deeproots", 10, 10, 1, (1, 1)),
              _make("igcv2", 6, 10, 2, (2, 2)), _make("mobilenetv2", 100, 100, 1, (1, 1))]
    for i, block in enumerate(blocks + blocks[::-1]):
        cin = block.body.in_channels if hasattr(block.body, "in_channels") else None
        cin = cin or next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
        x = torch.randn(2, cin, 7 + i % 3, 5 + i % 4) * 100 + 50
        _check(_randomize(block, i), x, threads, i % 3)


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("kind", KINDS)
def test_each_family_at_batch_1_and_32(native_kernel, kind, batch):
    block = _randomize(_make(kind, 36, 36, 1, (2, 2)))
    fused = _check(block, torch.randn(batch, 36, 8, 8), threads=2)
    rows = block_forms(fused)
    assert rows and all(r.form == "fused" for r in rows)


def test_residual_block_adds_its_input_once(native_kernel):
    """IGCV3 with an identity skip: the kernel adds the input; the block's own skip is
    switched off so that it is not added twice."""
    block = _randomize(IGCV3Block(16, 16, 1))
    assert block.skip
    fused = _check(block, torch.randn(2, 16, 9, 9))
    assert fused.model.body.residual and not fused.model.skip


def test_any_memory_layout_and_non_contiguous_input(native_kernel):
    block = _randomize(IGCV2Block(32, 32, groups=(4, 8), nonlinear=True))
    x = torch.randn(2, 32, 10, 14)
    fused = optimize(block, "fused", example=x)
    with torch.inference_mode():
        expect = block(x)
        for variant in (x, x.contiguous(memory_format=torch.channels_last),
                        torch.randn(2, 32, 14, 10).transpose(2, 3).copy_(x),
                        torch.cat([x, x], 3)[..., ::2].copy_(x)):
            assert (fused(variant) - expect).abs().max() < 1e-4


def test_half_and_cuda_input_are_refused_in_one_line(native_kernel):
    fused = optimize(_randomize(IGCV2Block(16, 16, groups=(2, 8))), "fused")
    with pytest.raises(IGCError, match="float32 CPU input") as info:
        fused(torch.randn(1, 16, 4, 4).half())
    assert "\n" not in str(info.value)


def test_batch_zero_and_larger_batches_than_planned(native_kernel):
    block = _randomize(IGCV3Block(12, 12))
    fused = optimize(block, "fused", batch=1)
    with torch.inference_mode():
        assert fused(torch.randn(0, 12, 5, 5)).shape == (0, 12, 5, 5)
        x = torch.randn(7, 12, 5, 5)
        assert (fused(x) - block(x)).abs().max() < 1e-4


class _Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def test_unsupported_activation_keeps_the_pytorch_form_and_says_why(native_kernel):
    block = _randomize(IGCV2Block(16, 16, groups=(2, 8), nonlinear=True, act_layer=_Swish))
    x = torch.randn(2, 16, 6, 6)
    fused = optimize(block, "fused", example=x)
    assert not any(isinstance(m, FusedChain) for m in fused.modules())
    reasons = [r.reason for r in block_forms(fused)]
    assert reasons and all("not fused: the fused kernel has no _Swish" in r for r in reasons)
    with torch.inference_mode():
        assert (fused(x) - block(x)).abs().max() < 1e-4
    with pytest.raises(FusedUnsupported, match="ReLU, ReLU6 or no activation"):
        FusedPlan(lower(block.body))


def test_group_norm_block_is_kept_with_its_reason():
    block = IGCV2Block(16, 16, groups=(2, 8), norm_layer=lambda c: nn.GroupNorm(2, c)).eval()
    fused = optimize(block, "fused")
    (row,) = block_forms(fused)
    assert row.form == "kept" and "GroupNorm" in row.reason


def test_spatial_conv_with_unequal_group_widths_is_unsupported():
    block = IGCV1Block(8, 16, 2)  # group 3x3: 2 inputs, 4 outputs per group
    with pytest.raises(FusedUnsupported, match="as many inputs as outputs"):
        FusedPlan(lower(block.body))


def test_cost_rule_vetoes_only_large_dense_products_over_many_pixels():
    def veto(block: nn.Module, pixels: int | None = None) -> str:
        return BUILTIN.fused_veto(FusedPlan(lower(block.body)).segments, pixels)

    assert veto(IGCV2Block(1024, 1024, groups=(8, 8), nonlinear=True), 32 * 49) == ""
    assert veto(IGCV3Block(64, 64)) == ""
    assert veto(XceptionBlock(256, 256), 32 * 256) == ""
    assert veto(XceptionBlock(1024, 1024), 49) == ""
    assert "dense 1x1 of 1048576 weights" in veto(XceptionBlock(1024, 1024), 32 * 49)
    # half-filled vectors are priced now (tests/test_block_cost.py), not vetoed
    assert veto(IGCV2Block(64, 64, branch_sizes=(8, 8))) == ""


def test_auto_and_measure_modes_keep_the_outputs(native_kernel):
    block = _randomize(IGCV2Block(128, 128, groups=(8, 8), nonlinear=True))
    x = torch.randn(1, 128, 7, 7)
    auto = optimize(block, "auto", example=x, cost=replace(BUILTIN, fused_rate=1e17))
    assert isinstance(auto.model.body, FusedChain)  # priced below the unfused forms
    measured = optimize(block, "measure", example=x)
    assert isinstance(measured.model.body, (FusedChain, FastChain))
    assert "measured fused=" in block_forms(measured)[0].reason
    with torch.inference_mode():
        for m in (auto, measured):
            assert (m(x) - block(x)).abs().max() < 1e-4


def test_custom_operator_passes_opcheck_and_torch_export(native_kernel):
    block = _randomize(IGCV3Block(8, 8))
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    fused = optimize(block, "fused")
    body = fused.model.body
    torch.library.opcheck(torch.ops.igc.fused_block.default, (x, body.params(), body.config))
    program = torch.export.export(fused, (x,))
    assert "igc.fused_block" in str(program.graph)
    with torch.inference_mode():
        assert (program.module()(x) - block(x)).abs().max() < 1e-4


def test_plain_eager_calls_the_kernel_and_watched_calls_the_operator(native_kernel, monkeypatch):
    """Plain eager calls go straight to the native module (the custom operator's Python
    dispatch costs ~13 us a call); under a dispatch mode (FlopCounterMode, fake tensors,
    profilers) the operator is called, so the mode sees it. Same outputs either way."""
    from igc.deploy.chain import fused as fused_module

    block = _randomize(IGCV2Block(16, 16, groups=(2, 8)))
    x = torch.randn(2, 16, 6, 6)
    fused = optimize(block, "fused")
    with torch.inference_mode():
        want = block(x)
        with Record() as seen:
            watched = fused(x)
        assert any("igc.fused_block" in op for op in seen.ops)
        operator = fused_module.fused_block
        monkeypatch.setattr(fused_module, "fused_block", None)  # calling it would fail
        plain = fused(x)
        monkeypatch.setattr(fused_module, "fused_block", operator)
    assert torch.equal(plain, watched)
    assert (plain - want).abs().max() < 1e-4


def test_params_follow_replaced_buffers(native_kernel):
    """The kernel reads the module's buffers as they are now (no stale cached list)."""
    block = _randomize(IGCV3Block(8, 8))
    fused = optimize(block, "fused")
    body = fused.model.body
    x = torch.randn(1, 8, 5, 5)
    with torch.inference_mode():
        before = fused(x)
        body.p0 = body.p0 * 2  # a new tensor in the buffer slot
        assert body.params()[0] is body.p0
        assert not torch.equal(fused(x), before)


@pytest.mark.slow
def test_torch_compile_traces_the_custom_operator(native_kernel):
    block = _randomize(IGCV2Block(16, 16, groups=(2, 8), nonlinear=True))
    x = torch.randn(2, 16, 6, 6)
    compiled = torch.compile(optimize(block, "fused"), fullgraph=True)
    with torch.inference_mode():
        assert (compiled(x) - block(x)).abs().max() < 1e-4


def test_onnx_export_sees_the_pytorch_form(native_kernel):
    pytest.importorskip("onnx")
    from igc.deploy.export import onnx_bytes

    fused = optimize(_randomize(IGCV2Block(16, 16, groups=(2, 8))), "fused")
    blob = onnx_bytes(fused, 16, 6)
    assert b"fused_block" not in blob and b"Conv" in blob


def test_failed_build_falls_back_with_one_warning(monkeypatch):
    """A build that fails (here: a loader that raises) gives the PyTorch form and one
    warning line, once per process."""
    saved = dict(nat._state)
    monkeypatch.setattr(nat, "_build", lambda: (_ for _ in ()).throw(RuntimeError("no g++")))
    nat.reset()
    try:
        block = _randomize(IGCV3Block(12, 12))
        x = torch.randn(1, 12, 5, 5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fused = optimize(block, "fused", example=x)
            optimize(block, "fused", example=x)
        lines = [str(w.message) for w in caught if "fused CPU kernel" in str(w.message)]
        assert len(lines) == 1 and "no g++" in lines[0] and "\n" not in lines[0]
        assert not any(isinstance(m, FusedChain) for m in fused.modules())
        assert "native kernel is not available" in block_forms(fused)[0].reason
        with torch.inference_mode():
            assert (fused(x) - block(x)).abs().max() < 1e-4
    finally:
        nat._state.clear()
        nat._state.update(saved)


def test_igc_no_native_in_a_fresh_process():
    code = ("import warnings, torch\n"
            "from igc.deploy import optimize\n"
            "from igc.layers import IGCV2Block\n"
            "from igc.deploy.chain.fused import FusedChain\n"
            "b = IGCV2Block(32, 32, groups=(2, 8), nonlinear=True).eval()\n"
            "x = torch.randn(1, 32, 5, 5)\n"
            "f = optimize(b, 'fused', example=x)\n"
            "assert not any(isinstance(m, FusedChain) for m in f.modules())\n"
            "with torch.no_grad(): assert (f(x) - b(x)).abs().max() < 1e-4\n"
            "print('ok')\n")
    env = {**os.environ, "IGC_NO_NATIVE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    lines = [line for line in out.stderr.splitlines() if "fused CPU kernel" in line]
    assert len(lines) == 1 and "IGC_NO_NATIVE is set" in lines[0]


def test_stale_build_lock_of_a_killed_build_does_not_hang(tmp_path):
    """torch's build ``lock`` file left by a killed build would block every later load
    forever; igc's own flock proves it stale and removes it (checked in a fresh process
    with a time limit)."""
    import subprocess
    import sys

    from igc.deploy import native as nat

    if nat.native() is None:
        pytest.skip(f"no native kernel here: {nat.native_reason()}")
    name = nat.native().__name__
    stale = nat._build_directory(name) / "lock"
    stale.touch()
    code = "from igc.deploy.native import native; assert native() is not None"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=240)
    assert not stale.exists()


def test_a_gradient_asked_of_the_fused_form_is_refused_not_dropped(native_kernel):
    """The kernel has no backward: with an input that requires grad the custom operator
    runs, whose output refuses a backward in one line (the kernel's own output would carry
    no gradient at all, and a backward through the rest of a graph would skip the input)."""
    fused = optimize(_randomize(IGCV3Block(8, 8)), "fused")
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    y = fused(x)
    assert y.grad_fn is not None
    with pytest.raises(RuntimeError, match="no autograd formula"):
        y.sum().backward()
