"""The inference form (igc.deploy.optimize) computes what the eval-mode model computes."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import randomize_bn, zoo_params
from torch import nn

from igc.deploy import (
    FORMS,
    FastChain,
    block_forms,
    choose_form,
    format_block_forms,
    optimize,
)
from igc.deploy.chain import (
    ActOp,
    ConvOp,
    PermOp,
    Segment,
    build_steps,
    lower,
    move_permutations,
    run_ops,
    shuffle_groups,
)
from igc.errors import IGCError
from igc.layers import (
    DeepRootsBlock,
    IGCV1Block,
    IGCV2Block,
    IGCV3Block,
    MobileNetV2Block,
    XceptionBlock,
)
from igc.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-4


BLOCKS = {
    "xception": lambda: XceptionBlock(16, 24, 2),
    "mobilenetv1": lambda: XceptionBlock(16, 16, nonlinear=True),
    "igcv1": lambda: IGCV1Block(16, 32, 2),
    "igcv2-strict": lambda: IGCV2Block(64, 64, branch_sizes=[8, 8]),
    "igcv2-three": lambda: IGCV2Block(48, 48, branch_sizes=[4, 3, 4]),
    "igcv2-nonlinear": lambda: IGCV2Block(64, 128, 2, groups=[8, 8], nonlinear=True),
    "igcv2-group3x3": lambda: IGCV2Block(32, 32, branch_sizes=[4, 8], spatial_branch=2),
    "igcv2-star-classifier": lambda: IGCV2Block(64, 40, groups=[8, 4], nonlinear=True,
                                                spatial=False),
    "igcv3": lambda: IGCV3Block(16, 16),
    "igcv3-stride": lambda: IGCV3Block(16, 24, 2),
    "mobilenetv2": lambda: MobileNetV2Block(16, 16),
    "mobilenetv2-t1": lambda: MobileNetV2Block(16, 16, expansion=1),
    "deeproots": lambda: DeepRootsBlock(16, 32, 2),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
@pytest.mark.parametrize("mode", ["auto", *FORMS, "fold"])
def test_every_block_type_every_form(name, mode):
    torch.manual_seed(0)
    block = randomize_bn(BLOCKS[name]())
    fast = optimize(block, mode)
    for batch in (1, 3):
        x = torch.randn(batch, block.in_channels, 9, 9)
        with torch.no_grad():
            expected = block(x)
        with torch.inference_mode():
            got = fast(x)
            got_nchw = fast.model(x)  # NCHW input straight to the inner model
        assert got.shape == expected.shape
        assert (got - expected).abs().max() < TOL
        assert (got_nchw - expected).abs().max() < TOL
        if mode != "fold" and batch > 1:  # fold keeps shuffles, which copy to NCHW
            assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_layouts(layout):
    block = randomize_bn(BLOCKS["igcv2-nonlinear"]())
    fast = optimize(block, "structured", layout=layout)
    for batch in (1, 2):
        x = torch.randn(batch, 64, 8, 8)
        with torch.inference_mode():
            got = fast(x)
        assert (got - block(x)).abs().max() < TOL
        assert got.is_contiguous(memory_format=torch.channels_last if layout == "channels_last"
                                 else torch.contiguous_format)


@pytest.mark.parametrize("name", ["igcv2-nonlinear", "igcv3", "igcv1"])
def test_chain_on_its_own_in_any_memory_format(name):
    block = randomize_bn(BLOCKS[name]())
    for mode in FORMS:
        chain = FastChain(block.body, mode)
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(2, block.in_channels, 6, 6).contiguous(memory_format=fmt)
            with torch.no_grad():
                assert (chain(x) - block.body(x)).abs().max() < TOL


def test_no_shuffle_copies_left_in_the_inference_form():
    for name in ("igcv2-strict", "igcv2-nonlinear", "igcv3", "igcv1", "igcv2-group3x3"):
        fast = optimize(BLOCKS[name](), "auto")
        kinds = {type(m).__name__ for m in fast.modules()}
        assert "Permutation" not in kinds, name
        assert "ChannelShuffle" not in kinds and "BatchNorm2d" not in kinds, name


def _random_perm(c: int, seed: int) -> torch.Tensor:
    return torch.randperm(c, generator=torch.Generator().manual_seed(seed))


def _conv(c_in: int, c_out: int, groups: int, k: int = 1, seed: int = 0,
          stride: int = 1) -> ConvOp:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c_out, c_in // groups, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64)
    return ConvOp(w / math.sqrt(c_in // groups * k * k), b, groups, stride, k // 2)


OP_LISTS = {
    # generic permutations (not shuffles) between, before and after structured factors
    "perm-between": lambda: [_conv(12, 12, 12, 3), _conv(12, 12, 3, seed=1),
                             PermOp(_random_perm(12, 2)), _conv(12, 24, 4, seed=3),
                             ActOp("relu"), PermOp(_random_perm(24, 4))],
    # a permutation that must travel forwards through an activation and a depthwise conv
    "perm-forward": lambda: [_conv(8, 8, 4, 3), PermOp(_random_perm(8, 5)), ActOp("relu6"),
                             _conv(8, 8, 8, 3, seed=6), _conv(8, 16, 2, seed=7)],
    # backwards through depthwise + activation into a dense conv's rows
    "perm-into-dense": lambda: [_conv(8, 8, 1, seed=1), ActOp("relu"), _conv(8, 8, 8, 3),
                                PermOp(_random_perm(8, 3)), _conv(8, 8, 4, 3, seed=2)],
    # a depthwise conv first, then permutations on both sides of an activation
    "dw-first": lambda: [_conv(8, 8, 8, 3), PermOp(_random_perm(8, 1)), ActOp("relu"),
                         PermOp(_random_perm(8, 2)), _conv(8, 8, 2, seed=4)],
    "shuffles": lambda: [_conv(16, 16, 4), PermOp(torch.arange(16).view(4, 4).t().reshape(-1)),
                         _conv(16, 16, 4, seed=1),
                         PermOp(torch.arange(16).view(2, 8).t().reshape(-1))],
}


@pytest.mark.parametrize("name", sorted(OP_LISTS))
@pytest.mark.parametrize("mode", FORMS)
def test_permutation_algebra_is_exact(name, mode):
    ops = OP_LISTS[name]()
    x = torch.randn(2, ops[0].in_channels, 7, 7, dtype=torch.float64)
    expected = run_ops(ops, x)
    moved = move_permutations(ops)
    assert (run_ops(moved, x) - expected).abs().max() < 1e-10
    assert (run_ops(ops, x) - expected).abs().max() == 0  # the input list is untouched
    steps, _ = build_steps(ops, mode)
    for fmt in (torch.contiguous_format, torch.channels_last):
        xf = x.float().contiguous(memory_format=fmt)
        with torch.inference_mode():
            got = steps.to(memory_format=fmt)(xf)
        assert (got.double() - expected).abs().max() < TOL


def test_shuffle_recognition_and_lowering():
    assert shuffle_groups(torch.arange(12).view(3, 4).t().reshape(-1)) == 3
    assert shuffle_groups(_random_perm(12, 0)) in (None, *range(2, 12))
    block = IGCV2Block(16, 16, groups=[4, 4], nonlinear=True)
    ops = lower(block.body)
    assert [type(o).__name__ for o in ops] == ["ConvOp", "ActOp", "ConvOp", "PermOp", "ConvOp",
                                               "ActOp", "PermOp"]
    moved = move_permutations(ops)
    # the trailing shuffle moved back before the ReLU, onto the segment's output
    assert isinstance(moved[-1], ActOp) and isinstance(moved[-2], PermOp)


def test_cost_rule():
    def seg(*convs):
        return Segment(list(convs), torch.zeros(convs[-1].out_channels))

    assert choose_form(seg(_conv(64, 64, 1)))[0] == "dense"
    assert choose_form(seg(_conv(1024, 1024, 32), _conv(1024, 1024, 32)))[0] == "structured"
    assert choose_form(seg(_conv(64, 64, 16), _conv(64, 64, 4)))[0] == "dense"  # k = 4
    form, reason = choose_form(seg(_conv(256, 256, 2)))
    assert form in FORMS and reason


def test_block_forms_lists_every_block():
    model = create_model("igcv2_fmnist")
    rows = block_forms(model)
    assert len(rows) == 6 and all(r.form in (*FORMS, "fused") for r in rows)
    assert rows[0].block.endswith("body") and rows[0].kind == "IGCV2Block"
    optimized = optimize(model)
    assert [r.form for r in block_forms(optimized)] == [r.form for r in rows]
    assert [r.form for r in block_forms(optimize(model, "dense"))] == ["dense"] * 6
    text = format_block_forms(rows)
    assert "structured" in text or "dense" in text


def test_measure_mode_keeps_outputs():
    model = randomize_bn(create_model("igcv2_fmnist"))
    fast = optimize(model, "measure", example=torch.randn(2, 1, 28, 28))
    assert all(r.reason.startswith("measured") for r in block_forms(fast))
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max() < TOL


@pytest.mark.slow
def test_inference_mode_batch_sizes_and_compile():
    model = randomize_bn(create_model("igcv2_fmnist"))
    fast = optimize(model)
    for batch in (1, 64):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            expected = model(x)
        with torch.inference_mode():
            assert (fast(x) - expected).abs().max() < TOL
        assert (fast(x) - expected).abs().max() < TOL  # also outside inference_mode
    compiled = torch.compile(fast, backend="aot_eager", dynamic=True)
    for batch in (2, 5):
        x = torch.randn(batch, 1, 28, 28)
        with torch.inference_mode():
            assert (compiled(x) - model(x)).abs().max() < TOL


def test_optimize_rejects_bad_requests():
    model = create_model("igcv2_fmnist")
    with pytest.raises(IGCError, match="unknown optimize mode"):
        optimize(model, "fastest")
    with pytest.raises(IGCError, match="already optimized"):
        optimize(optimize(model))
    assert model.training  # the caller's model is untouched


def _zoo_input(model: nn.Module) -> torch.Tensor:
    chans, side, _ = model.pretrained_cfg["input_size"]
    size = min(side, 16 if side > 64 else side)
    return torch.randn(2, chans, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", zoo_params())
def test_zoo_parity(name):
    model = randomize_bn(create_model(name))
    x = _zoo_input(model)
    with torch.no_grad():
        expected = model(x)
    fast = optimize(model, inplace=True)  # the reference is computed: save the copy
    with torch.inference_mode():
        got = fast(x)
    scale = max(1.0, float(expected.abs().max()))
    assert (got - expected).abs().max() < TOL * scale
    leftovers = {type(m).__name__ for m in fast.modules()} & {"BatchNorm2d", "ChannelShuffle"}
    assert not leftovers, leftovers  # every BN folded, every shuffle deleted

