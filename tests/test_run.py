"""Consecutive fused blocks in one kernel call (igc.deploy.chain.run, the native
fused_chain) and the padded maps between fused blocks (igc.deploy.chain.handover.pad_maps):
bit-identical with the blocks called one by one over random chains of blocks, images,
batches, threads and tiles; which blocks form runs; the paths outside plain eager calls;
strided inputs; bad input."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_helpers import Record, randomize  # tests/ is the tests' folder
from torch import nn

from igc.deploy import block_forms, optimize
from igc.deploy.chain.fused import FusedChain, unfused
from igc.deploy.chain.handover import PAD, padded_pixel
from igc.deploy.chain.run import FusedRun, InRun, unchain
from igc.deploy.chain.stem import NativeStem, fuse_stem
from igc.deploy.native import output_shape, output_strides
from igc.layers import IGCV2Block, IGCV3Block, XceptionBlock
from igc.models.registry import create_model
from igc.runtime import num_threads

run_module = importlib.import_module("igc.deploy.chain.run")


def _block(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    if kind == "igcv2":
        return IGCV2Block(cin, cout, stride, groups=(2, 2))
    if kind == "igcv3":  # a 1x1 segment before the depthwise convolution, residuals
        return IGCV3Block(cin, cout, stride, expansion=2, g1=2, g2=2)
    return XceptionBlock(cin, cout, stride, nonlinear=True)  # MobileNetV1's


def _chain(block: nn.Module, x: torch.Tensor) -> FusedChain:
    fused = optimize(block, "fused", example=x)
    found = [m for m in fused.modules() if isinstance(m, FusedChain)]
    assert len(found) == 1
    return found[0]


def _padded(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``x`` (channels-last values) as a view with ``pad`` floats more between pixels."""
    n, c, h, w = x.shape
    wide = torch.zeros(n, c + pad, h, w).contiguous(memory_format=torch.channels_last)
    view = wide.narrow(1, 0, c)
    view.copy_(x)
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(("igcv2", "igcv3", "mobilenetv1")),
                          st.sampled_from((16, 24, 32)), st.sampled_from((1, 2))),
                min_size=1, max_size=4),
       st.integers(1, 19), st.integers(1, 19), st.integers(1, 3), st.sampled_from((1, 2)),
       st.integers(0, 3), st.booleans(), st.integers(0, 2**16))
def test_a_chain_equals_its_blocks_one_by_one(native_kernel, spec, height, width, batch,
                                              threads, tile_rows, pad_input, seed):
    """Random chains of IGCV2, IGCV3 (1x1 segment before the depthwise pass, residuals)
    and MobileNetV1 blocks (in place reads where the width is a multiple of 16), strides
    1 and 2, images down to one pixel, 1-3 images, 1-2 threads (bands of rows on each),
    tiles of 1-3 rows (0: the plan's), a padded input: bit-identical with the blocks called
    one after another."""
    torch.manual_seed(seed)
    cin = 16
    x = torch.randn(batch, cin, height, width).contiguous(memory_format=torch.channels_last)
    chains = []
    h = x
    for i, (kind, cout, stride) in enumerate(spec):
        block = randomize(_block(kind, cin, cout, stride), seed + i)
        chain = _chain(block, h)
        if tile_rows:
            chain.config[9] = tile_rows
        chains.append(chain)
        with torch.inference_mode():
            h = native_kernel.fused_block(h, chain.params(), chain.config)
        cin = cout
    given_x = _padded(x, 16) if pad_input else x
    with num_threads(threads), torch.inference_mode():
        want = x
        for chain in chains:
            want = native_kernel.fused_block(want, chain.params(), chain.config)
        got = native_kernel.fused_chain(given_x, [], [], [c.params() for c in chains],
                                        [c.config for c in chains])
    assert got.shape == want.shape and got.stride() == want.stride()
    assert torch.equal(got, want)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(5, 40), st.integers(1, 2), st.sampled_from((1, 2)), st.integers(1, 3),
       st.integers(0, 2**16))
def test_a_stem_in_the_chain_equals_the_stem_then_the_blocks(native_kernel, side, batch,
                                                              threads, blocks, seed):
    """A stem (3x3, stride 2) and up to three blocks in one call: bit-identical with the
    stem kernel and the blocks called one after another."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6()))
    assert fuse_stem(net)
    stem = net[0]
    x = torch.randn(batch, 3, side, side)
    with torch.inference_mode():
        h = stem(x)
    chains = []
    for i in range(blocks):
        chain = _chain(randomize(_block(("mobilenetv1", "igcv2", "igcv3")[i], 16, 16,
                                         1 + i % 2), seed + i), h)
        chains.append(chain)
        with torch.inference_mode():
            h = native_kernel.fused_block(h, chain.params(), chain.config)
    with num_threads(threads), torch.inference_mode():
        want = stem(x)
        for chain in chains:
            want = native_kernel.fused_block(want, chain.params(), chain.config)
        got = FusedRun(chains, ["stem"] + [f"b{i}" for i in range(blocks)], stem)(x)
    assert torch.equal(got, want)


def test_zoo_runs_and_their_outputs(native_kernel):
    """Which blocks form runs in the zoo (maps of at least 1 MiB, weights within 512 KiB),
    and each optimized network equals its eval model and its unfused and unchained
    forms at batch 1 and 3 on 1 and 2 threads."""
    picked = {}
    for name in ("igcv2_100", "mobilenetv1_100", "igcv3_070", "igcv2_c64_d8"):
        model = randomize(create_model(name), 0)
        fast = optimize(model, "fused")
        runs = [m for m in fast.modules() if isinstance(m, FusedRun)]
        picked[name] = [r.names for r in runs]
        side = 32 if "c64" in name else 96
        x = torch.randn(3, 3, side, side)
        with torch.inference_mode():
            want = model(x)
            scale = 1 + want.abs().max()
            plain = unfused(fast)
            assert not any(isinstance(m, (FusedRun, InRun)) for m in plain.modules())
            for batch in (1, 3):
                for threads in (1, 2):
                    with num_threads(threads):
                        got = fast(x[:batch])
                        assert (got - want[:batch]).abs().max() < 1e-4 * scale
                        assert (plain(x[:batch]) - want[:batch]).abs().max() < 1e-4 * scale
        if runs:  # the run's own blocks, called one by one, give the same map
            unchained = optimize(model, "fused")
            unchain(unchained)
            assert not any(isinstance(m, (FusedRun, InRun)) for m in unchained.modules())
            with torch.inference_mode():
                assert torch.equal(unchained(x), fast(x))
    stages = [f"stages.{s}" for s in ("0.0", "1.0", "1.1", "2.0", "2.1")]
    assert picked["igcv2_100"] == [["stem", *(f"{s}.body" for s in stages)]]
    assert picked["mobilenetv1_100"] == [["stem", *(f"{s}.body" for s in stages[:4])]]
    assert picked["igcv3_070"] == [["stem", "stages.0.0.body"]]
    assert picked["igcv2_c64_d8"] == []  # 32x32 maps: small


def test_the_weight_budget_ends_a_run(native_kernel, monkeypatch):
    model = create_model("igcv2_100").eval()
    monkeypatch.setattr(run_module, "WEIGHT_BYTES", 48 << 10)  # the stem and two blocks
    fast = optimize(model, "fused")
    runs = [m.names for m in fast.modules() if isinstance(m, FusedRun)]
    assert runs == [["stem", "stages.0.0.body", "stages.1.0.body"]]
    monkeypatch.setattr(run_module, "MAP_BYTES", 1 << 40)  # no map is large enough
    assert not any(isinstance(m, FusedRun) for m in optimize(model, "fused").modules())


def test_block_forms_and_the_paths_outside_eager_calls(native_kernel):
    model = randomize(create_model("igcv2_100"), 1)
    fast = optimize(model, "fused")
    rows = block_forms(fast)
    assert len(rows) == 13 and {r.form for r in rows} == {"fused"}
    assert sum("in the kernel call at stem" in r.reason for r in rows) == 5
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        want = model(x)
    scale = 1 + want.abs().max()
    traced = torch.jit.trace(fast, x, check_trace=False)  # every block's PyTorch form
    assert "fused_block" not in str(traced.inlined_graph)
    with torch.no_grad():
        assert (traced(x) - want).abs().max() < 1e-4 * scale
        with Record() as seen:  # a dispatch mode: the custom operator, block by block
            assert (fast(x) - want).abs().max() < 1e-4 * scale
    assert sum("igc.fused_block" in op for op in seen.ops) == 13
    assert isinstance(fast.model.stem, FusedRun) and isinstance(fast.model.stem.stem,
                                                                NativeStem)
    assert all(isinstance(fast.model.stages[s][0].body, InRun) for s in (0, 1))


def test_a_run_needs_blocks_and_names():
    with pytest.raises(ValueError, match="two or more blocks"):
        FusedRun([], [])


def test_maps_between_fused_blocks_are_padded_at_1kib_multiples(native_kernel):
    """Inner outputs of 256-multiple widths carry 16 floats more between pixels (the fake
    implementation says the same strides); the last block's output is channels-last;
    PyTorch reads a padded map as any strided tensor."""
    assert padded_pixel(256) == 256 + PAD and padded_pixel(1024) == 1024 + PAD
    assert padded_pixel(96) == 96 and padded_pixel(384) == 384
    model = randomize(create_model("mobilenetv1_050"), 2)
    fast = optimize(model, "fused")
    chains = [m for m in fast.modules() if isinstance(m, FusedChain)]
    padded = [c for c in chains if c.config[14]]
    assert padded and all(c.config[14] == padded_pixel(c.config[2]) for c in padded)
    assert chains[-1].config[14] == 0
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        h = x
        for m in fast.model.stem.modules():
            if isinstance(m, NativeStem):
                h = m(h)
        outs = []
        for chain in chains:
            shape = output_shape(h.shape, chain.config)
            h = chain(h)
            outs.append(h)
            assert tuple(h.shape) == shape
            assert h.stride() == output_strides(shape, chain.config), chain.config
        assert any(o.stride(3) > o.shape[1] for o in outs)
        inner = next(o for o in outs if o.stride(3) > o.shape[1])
        assert torch.equal(inner + 0, inner.contiguous() + 0)  # any op reads it
        assert (fast(x) - model(x)).abs().max() < 1e-4 * (1 + model(x).abs().max())


@pytest.mark.parametrize("layout", ["nchw", "padded", "channels_last", "sliced"])
def test_fused_block_reads_any_layout(native_kernel, layout):
    torch.manual_seed(3)
    chain = _chain(randomize(_block("mobilenetv1", 32, 32, 1), 3),
                   torch.randn(1, 32, 9, 9))
    base = torch.randn(2, 32, 9, 9).contiguous(memory_format=torch.channels_last)
    x = {"nchw": base.contiguous(), "padded": _padded(base, 16), "channels_last": base,
         "sliced": torch.randn(2, 32, 9, 18).contiguous(
             memory_format=torch.channels_last)[..., ::2]}[layout]
    if layout == "sliced":
        base = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = native_kernel.fused_block(base, chain.params(), chain.config)
        assert torch.equal(native_kernel.fused_block(x, chain.params(), chain.config), want)


def test_bad_chains_are_refused_in_one_line(native_kernel):
    a = _chain(randomize(_block("mobilenetv1", 16, 32, 1), 0), torch.randn(1, 16, 8, 8))
    b = _chain(randomize(_block("mobilenetv1", 16, 16, 1), 1), torch.randn(1, 16, 8, 8))
    x = torch.randn(1, 16, 8, 8)
    with pytest.raises(RuntimeError, match="expected 16 input channels, got 32"):
        native_kernel.fused_chain(x, [], [], [a.params(), b.params()], [a.config, b.config])
    with pytest.raises(RuntimeError, match="one parameter list per config"):
        native_kernel.fused_chain(x, [], [], [a.params()], [])
    with pytest.raises(RuntimeError, match="a stem needs"):
        native_kernel.fused_chain(x, [torch.zeros(1)], [], [b.params()], [b.config])
    bad = list(b.config)
    bad[14] = 16 + 65  # more padding than the kernel takes
    with pytest.raises(RuntimeError, match="bad config"):
        native_kernel.fused_block(x, b.params(), bad)


def test_an_empty_batch_gives_an_empty_output(native_kernel):
    a = _chain(randomize(_block("mobilenetv1", 16, 32, 2), 0), torch.randn(1, 16, 8, 8))
    b = _chain(randomize(_block("igcv2", 32, 32, 1), 1), torch.randn(1, 32, 4, 4))
    with num_threads(2), torch.inference_mode():
        y = native_kernel.fused_chain(torch.randn(0, 16, 8, 8), [], [],
                                      [a.params(), b.params()], [a.config, b.config])
    assert y.shape == (0, 32, 4, 4)
