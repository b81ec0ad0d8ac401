"""Modules agree with the mathematics they were built from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.analysis.connectivity import measured_path_counts
from igc.errors import IGCError
from igc.layers import (
    ChannelShuffle,
    DeepRootsBlock,
    FactorChain,
    IGCV1Block,
    IGCV2Block,
    IGCV3Block,
    MobileNetV2Block,
    XceptionBlock,
    channel_shuffle,
)
from igc.sparsity import STRICT, Factor, KernelProduct, params_formula, shuffle_permutation


def conv_weights(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Conv2d))


sizes = (
    st.lists(st.integers(2, 5), min_size=1, max_size=3)
    .filter(lambda ks: math.prod(ks) <= 64)
    .flatmap(st.permutations)
)


@settings(max_examples=25, deadline=None)
@given(sizes=sizes, nonlinear=st.booleans(), shuffle_last=st.booleans())
def test_igcv2_block_connectivity_matches_the_product(sizes, nonlinear, shuffle_last):
    channels = math.prod(sizes)
    block = IGCV2Block(channels, channels, branch_sizes=sizes, nonlinear=nonlinear,
                       shuffle_last=shuffle_last)
    expected = KernelProduct.from_branch_sizes(channels, [1, *sizes]).path_counts
    measured = measured_path_counts(block.body, channels)
    if shuffle_last:  # the final shuffle only relabels the outputs
        measured = measured[np.argsort(shuffle_permutation(channels, channels // sizes[-1]))]
    assert (measured == expected).all()
    assert (measured == 1).all() and block.product.condition == STRICT
    assert conv_weights(block) == block.product.params == params_formula(channels, [1, *sizes])


@st.composite
def chains(draw):
    width = draw(st.sampled_from([4, 6, 8, 12, 16]))
    factors = []
    for index in range(draw(st.integers(1, 3))):
        groups = draw(st.sampled_from([g for g in range(1, width + 1) if width % g == 0]))
        out = groups * draw(st.integers(1, max(1, 24 // groups)))
        factors.append(Factor(width, out, groups, 9 if index == 0 else 1))
        width = out
    return KernelProduct(tuple(factors), shuffle_last=draw(st.booleans()))


@settings(max_examples=30, deadline=None)
@given(product=chains(), stride=st.sampled_from([1, 2]))
def test_any_chain_module_measures_as_predicted(product, stride):
    chain = FactorChain(product, stride=stride, acts=["relu6"] * product.layers)
    measured = measured_path_counts(chain, product.in_channels)
    assert (measured == product.path_counts).all()
    assert conv_weights(chain) == product.params


@settings(max_examples=20, deadline=None)
@given(sizes=sizes, shuffle_last=st.booleans())
def test_linear_chain_equals_one_dense_matrix(sizes, shuffle_last):
    channels = math.prod(sizes)
    product = KernelProduct.from_branch_sizes(channels, sizes, kernel_area=1,
                                              shuffle_last=shuffle_last)
    chain = FactorChain(product, norms=False).double()
    weights = [f[0].weight.detach()[:, :, 0, 0].numpy() for f in chain.factors]
    dense = product.dense_matrix(weights)
    x = torch.randn(3, channels, 4, 5, dtype=torch.float64)
    expected = np.einsum("oi,nihw->nohw", dense, x.numpy())
    np.testing.assert_allclose(chain(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(sizes=sizes)
def test_final_permutation_restores_the_digit_order(sizes):
    """With ShuffleNet's convention the permutations P_1..P_L of a strict IGCV2 block (and
    P_1, P_2 of an IGCV1 block) compose to the identity: output channel i of the block
    carries the digits of input channel i, the channel a residual unit adds it to."""
    channels = math.prod(sizes)
    igcv1 = IGCV1Block(channels, channels, primary_branch=sizes[0],
                       secondary_groups=sizes[0])
    for block in (IGCV2Block(channels, channels, branch_sizes=sizes), igcv1):
        x = torch.arange(float(channels)).view(1, channels, 1, 1)
        for module in block.modules():  # the shuffles alone, in the block's order
            if isinstance(module, ChannelShuffle):
                x = module(x)
        assert x.flatten().tolist() == list(range(channels))
        assert block.product.shuffle_last


@pytest.mark.parametrize("make", [
    lambda **kw: XceptionBlock(8, 16, 2, **kw),
    lambda **kw: IGCV1Block(8, 16, 2, **kw),
    lambda **kw: IGCV2Block(8, 8, branch_sizes=(2, 4), **kw),
    lambda **kw: IGCV3Block(8, 8, expansion=2, **kw),
    lambda **kw: MobileNetV2Block(8, 16, 2, expansion=2, **kw),
    lambda **kw: DeepRootsBlock(8, 8, groups=2, **kw),
])
def test_blocks_take_norm_and_activation_layers(make):
    block = make(norm_layer=lambda c: torch.nn.GroupNorm(2, c), act_layer=torch.nn.SiLU)
    kinds = {type(m) for m in block.modules()}
    assert torch.nn.GroupNorm in kinds and torch.nn.BatchNorm2d not in kinds
    assert torch.nn.SiLU in kinds and not kinds & {torch.nn.ReLU, torch.nn.ReLU6}
    y = block(torch.randn(2, 8, 6, 6))
    y.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_final_act_leaves_out_the_last_activation():
    for block in (XceptionBlock(8, 8, final_act=False), IGCV1Block(8, 8, final_act=False),
                  IGCV2Block(8, 8, branch_sizes=(2, 4), final_act=False)):
        assert not any(isinstance(m, torch.nn.ReLU) for m in block.modules())
        assert (block(torch.randn(2, 8, 4, 4)) < 0).any()  # BN output, no ReLU after it


def test_channel_shuffle_matches_the_permutation():
    x = torch.arange(12.0).view(1, 12, 1, 1)
    perm = shuffle_permutation(12, 3)
    assert channel_shuffle(x, 3).flatten().tolist() == x.flatten()[perm].tolist()


@pytest.mark.parametrize(
    ("block", "out_ch", "params"),
    [
        (XceptionBlock(16, 32, stride=2), 32, 9 * 16 + 16 * 32),
        (IGCV1Block(16, 32, stride=2), 32, 9 * 32 * 1 + 32 * 16),
        (IGCV2Block(16, 16, branch_sizes=[4, 4]), 16, 9 * 16 + 2 * 16 * 4),
        (IGCV2Block(16, 32, stride=2, groups=[4, 4], nonlinear=True), 32,
         9 * 16 + 16 * 4 + 32 * 4),
        (IGCV3Block(16, 16, expansion=6), 16, 16 * 48 + 96 * 9 + 16 * 48),
        (MobileNetV2Block(16, 24, stride=2, expansion=6), 24, 16 * 96 + 96 * 9 + 96 * 24),
        (DeepRootsBlock(16, 16, groups=4), 16, 16 * 4 * 9 + 16 * 16),
    ],
)
def test_blocks_shapes_and_weights(block, out_ch, params):
    x = torch.randn(2, 16, 8, 8)
    y = block(x)
    stride = block.stride
    assert y.shape == (2, out_ch, 8 // stride, 8 // stride)
    assert conv_weights(block) == params == block.product.params
    y.sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_igcv3_block_is_relaxed_complementary_and_skips():
    block = IGCV3Block(16, 16, expansion=6)
    assert block.skip and block.product.condition == "relaxed"
    measured = measured_path_counts(block.body, 16)
    assert (measured == block.product.path_counts).all()
    assert not IGCV3Block(16, 24, stride=2).skip


def test_identity_skip_needs_matching_shapes():
    with pytest.raises(IGCError, match="identity skip"):
        IGCV3Block(16, 24, skip=True)


def test_bad_block_widths_are_clear_errors():
    with pytest.raises(IGCError, match="does not divide"):
        IGCV2Block(64, 64, branch_sizes=[7, 8])
    with pytest.raises(IGCError, match="do not divide"):
        IGCV3Block(15, 15, g1=2)
