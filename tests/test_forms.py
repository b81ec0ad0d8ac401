"""The training forms of a factor chain compute the same function, gradients and running
statistics as the grouped form, from the same parameters."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import igc
from igc.errors import IGCError
from igc.layers import FactorChain, IGCV1Block, IGCV2Block, IGCV3Block
from igc.layers.chain import set_training_form
from igc.layers.forms import FORMS, plan
from igc.sparsity import Factor, KernelProduct


@st.composite
def chains(draw):
    """Random chains: widths, branches, kernel areas, norms, activations, last shuffle."""
    width = draw(st.sampled_from([4, 6, 8, 12, 16]))
    factors = []
    for index in range(draw(st.integers(1, 4))):
        groups = draw(st.sampled_from([g for g in range(1, width + 1) if width % g == 0]))
        out = groups * draw(st.integers(1, max(1, 24 // groups)))
        area = 9 if draw(st.booleans()) and index == 0 else 1
        factors.append(Factor(width, out, groups, area))
        width = out
    product = KernelProduct(tuple(factors), shuffle_last=draw(st.booleans()))
    norms = draw(st.lists(st.booleans(), min_size=len(factors), max_size=len(factors)))
    acts = draw(st.lists(st.sampled_from([None, "relu", "relu6"]), min_size=len(factors),
                         max_size=len(factors)))
    return product, norms, acts


def _forms(chain: nn.Module) -> dict[str, nn.Module]:
    return {form: set_training_form(copy.deepcopy(chain), form) for form in FORMS}


def _randomise_norms(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g))
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def assert_same_step(modules: dict[str, nn.Module], x: torch.Tensor, steps: int = 2) -> None:
    """Same outputs, parameter gradients and buffers after ``steps`` training steps, and
    the same eval-mode outputs afterwards."""
    reference = modules["grouped"]
    for _ in range(steps):
        outputs, grads = {}, {}
        for name, module in modules.items():
            module.train()
            y = module(x)
            outputs[name] = y
            g = torch.linspace(-1, 1, y.numel()).view_as(y)
            grads[name] = torch.autograd.grad(y, list(module.parameters()), g)
        for name in modules:
            torch.testing.assert_close(outputs[name], outputs["grouped"], rtol=1e-5, atol=1e-5)
            for a, b in zip(grads[name], grads["grouped"]):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for name, module in modules.items():
        for (key, a), (_, b) in zip(module.state_dict().items(),
                                    reference.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
        module.eval()
    with torch.no_grad():
        for module in modules.values():
            torch.testing.assert_close(module(x), reference(x), rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(spec=chains(), stride=st.sampled_from([1, 2]), seed=st.integers(0, 2**16),
       channels_last=st.booleans())
def test_every_form_trains_like_the_grouped_chain(spec, stride, seed, channels_last):
    product, norms, acts = spec
    if stride == 2 and not any(f.is_spatial for f in product.factors):
        stride = 1
    torch.manual_seed(seed)
    chain = FactorChain(product, stride=stride, norms=norms, acts=acts).double()
    _randomise_norms(chain, seed)
    x = torch.randn(3, product.in_channels, 6, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert_same_step(_forms(chain), x)


def test_absorbed_form_removes_every_removable_shuffle():
    # linear IGCV2 with P_L: P_2 into the last factor's columns, P_3 into its rows
    block = IGCV2Block(32, 32, branch_sizes=(4, 8), nonlinear=True)
    steps = plan(block.product, block.body.factors, "absorbed")
    assert [s.shuffle for s in steps] == [False, False, False]
    assert [s.scatter is not None for s in steps] == [False, False, True]
    assert steps[2].norm_order is not None
    # IGCV3: the shuffle before the channel-wise 3x3 goes into the expansion's rows
    steps = plan(IGCV3Block(16, 16).product, IGCV3Block(16, 16).body.factors, "absorbed")
    assert [s.shuffle for s in steps] == [False, False, False]
    assert steps[0].norm_order is not None
    assert plan(block.product, block.body.factors, "grouped") is None


def test_auto_form_keeps_wide_branches_grouped():
    # 16 branches in the last factor: too many to densify, the shuffle stays a copy
    block = IGCV2Block(128, 128, branch_sizes=(16, 8), nonlinear=True)
    steps = plan(block.product, block.body.factors, "auto")
    assert steps[2].scatter is None and steps[2].shuffle


def test_group_norm_is_never_permuted():
    product = IGCV2Block(16, 16, branch_sizes=(4, 4), nonlinear=True).product
    chain = FactorChain(product, acts=[None, None, "relu"],
                        norm_layer=lambda c: nn.GroupNorm(2, c))
    steps = plan(product, chain.factors, "absorbed")
    assert all(s.norm_order is None for s in steps)
    assert steps[1].shuffle is False and steps[2].shuffle  # P_2 into W_3; P_3 copied
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 5)
    assert_same_step(_forms(chain), x)


@pytest.mark.parametrize("block", [
    IGCV1Block(16, 16), IGCV2Block(16, 32, stride=2, branch_sizes=(4, 4)),
    IGCV3Block(8, 8, expansion=4), IGCV2Block(16, 16, branch_sizes=(2, 8), nonlinear=True)])
def test_blocks_in_every_form(block):
    torch.manual_seed(1)
    block = block.double()
    _randomise_norms(block, 1)
    x = torch.randn(4, block.in_channels, 7, 7, dtype=torch.float64)
    assert_same_step(_forms(block), x)


def test_one_step_of_the_default_network_gives_the_same_gradients():
    torch.manual_seed(0)
    model = igc.create_model("igcv2_fmnist").double()
    x = torch.randn(8, 1, 28, 28, dtype=torch.float64)
    y = torch.randint(0, 10, (8,))
    grads = {}
    for form in FORMS:
        m = set_training_form(copy.deepcopy(model), form).train()
        loss = nn.functional.cross_entropy(m(x), y)
        grads[form] = torch.autograd.grad(loss, list(m.parameters()))
    for form in FORMS:
        for a, b in zip(grads[form], grads["grouped"]):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_unknown_form_is_one_line():
    with pytest.raises(IGCError, match="unknown training form 'fast'"):
        set_training_form(IGCV1Block(8, 8), "fast")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_forms_on_each_device(device):
    """The same code path on CUDA: index tensors follow the input's device. (float64: in
    float32 cuDNN's TF32 convolutions round the dense and grouped products differently,
    by up to 2e-2 in a gradient, which says nothing about the forms.)"""
    torch.manual_seed(2)
    block = IGCV2Block(16, 16, branch_sizes=(4, 4), nonlinear=True).to(device).double()
    x = torch.randn(4, 16, 6, 6, device=device, dtype=torch.float64)
    modules = _forms(block)
    outputs = {}
    for name, module in modules.items():
        module.train()
        y = module(x)
        y.square().sum().backward()
        outputs[name] = (y.detach(), [p.grad for p in module.parameters()])
    for y, grads in outputs.values():
        torch.testing.assert_close(y, outputs["grouped"][0], rtol=1e-9, atol=1e-9)
        for a, b in zip(grads, outputs["grouped"][1]):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    assert all(p.device.type == device for p in modules["auto"].parameters())


def test_recipe_and_layers_share_one_list_of_training_forms():
    """One definition (igc.names, torch-free so that reading a recipe imports no torch)."""
    from igc.names import TRAINING_FORMS
    from igc.train.recipe import TRAINING_FORMS as recipe_forms

    assert recipe_forms is TRAINING_FORMS and FORMS is TRAINING_FORMS
