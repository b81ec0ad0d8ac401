"""A fused block's trailing permutation handed to the next block
(igc.deploy.chain.handover): which pairs are rewritten, the network's output unchanged in
every path (the kernel, the custom operator, the PyTorch fallbacks under tracing), and
models that are not rewritten."""

from __future__ import annotations

import importlib

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from igc.deploy import optimize
from igc.deploy.chain.fused import FusedChain
from igc.deploy.chain.handover import hand_over_permutations
from igc.models.registry import create_model
from igc.runtime import num_threads


def _randomized(name: str, seed: int = 0) -> nn.Module:
    """A zoo model with random BatchNorm statistics and a classifier that shows errors."""
    torch.manual_seed(seed)
    model = create_model(name).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c) - 0.5)
            m.running_var.copy_(torch.rand(c) + 0.5)
    nn.init.normal_(model.classifier.weight)
    return model


def _chains(model: nn.Module) -> list[FusedChain]:
    """The fused blocks in the order they run (those of a FusedRun included)."""
    return [m for m in model.modules() if isinstance(m, FusedChain)]


def test_igcv2_hands_every_inner_permutation_over_and_keeps_its_output(native_kernel):
    model = _randomized("igcv2_100")
    fast = optimize(model, "fused")
    chains = _chains(fast.model)
    assert len(chains) == 13
    assert [c.config[13] for c in chains] == [0] * 12 + [1]  # the last keeps its tail
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        want = model(x)
        scale = 1 + want.abs().max()
        for threads in (1, 2):
            with num_threads(threads):
                assert (fast(x) - want).abs().max() < 1e-4 * scale
        features = fast.model.forward_features(x)  # the model's own channel order
        assert (features - model.forward_features(x)).abs().max() < 1e-4 * scale


def test_the_fallbacks_and_the_operator_agree_with_the_rewritten_kernels(native_kernel):
    model = _randomized("igcv2_100", seed=1)
    fast = optimize(model, "fused")
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        want = model(x)
    traced = torch.jit.trace(fast, x, check_trace=False)  # every block's PyTorch form
    assert "igc::fused_block" not in str(traced.inlined_graph)
    with torch.no_grad():
        assert (traced(x) - want).abs().max() < 1e-4 * (1 + want.abs().max())
    with torch.no_grad(), FlopCounterMode(display=False):
        # a dispatch mode: every block through the custom operator
        assert (fast(x) - want).abs().max() < 1e-4 * (1 + want.abs().max())


def test_blocks_that_cannot_take_it_keep_their_permutations(native_kernel, monkeypatch):
    # IGCV3's blocks have a 1x1 segment before the depthwise convolution and no trailing
    # permutation; MobileNetV1's have none either
    for name in ("igcv3_070", "mobilenetv1_100"):
        fast = optimize(create_model(name).eval(), "fused")
        assert hand_over_permutations(fast.model) == []
    # blocks with an identity skip add the map they are given: the CIFAR IGCV2 network
    model = create_model("igcv2_c64_d8").eval()
    fast = optimize(model, "fused")
    optimize_module = importlib.import_module("igc.deploy.optimize")  # not the function
    monkeypatch.setattr(optimize_module, "hand_over_permutations", lambda net: [])
    plain = optimize(model, "fused")
    assert any(c.config[13] for c in _chains(plain.model))  # it has permutations to give
    assert [c.config for c in _chains(fast.model)] == [c.config for c in _chains(plain.model)]


def test_only_full_networks_are_rewritten():
    stages = nn.Sequential(nn.Identity())
    assert hand_over_permutations(stages) == []
