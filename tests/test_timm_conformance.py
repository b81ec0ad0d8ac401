"""timm's own model tests (``tests/test_models.py`` of pytorch-image-models), ported to run
without timm over every network of the zoo: forward, backward, the default cfg (with
``pool_size``, ``head_hidden_size``, ``reset_classifier(num_classes, global_pool)``,
unpooled features, the classifier and first convolution named by the cfg), features_only
with timm's ``FeatureInfo``, TorchScript and torch.fx. Where timm only checks shapes, the
outputs are also compared with the eager network's.

The first network of each family runs in the fast lane; the rest are marked slow
(``conftest.zoo_params``). Inputs are small where the network allows (global pooling: any
side); the cfg check runs at the cfg's own ``input_size``, as timm's does.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import zoo_params
from torch import nn

from igc.errors import IGCError
from igc.layers.chain import set_training_form
from igc.models.net import FeatureInfo
from igc.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = zoo_params()
#: Side of the inputs of the forward, backward, TorchScript and fx checks (timm: 128-384).
SMALL = 32
#: Side of the features_only check (timm: 96).
FEATURES = 64


def small_input(model: nn.Module, batch: int, side: int = SMALL) -> torch.Tensor:
    """A random batch of ``min(side, cfg side)`` images for ``model``'s cfg (timm's
    ``_get_input_size`` with a target)."""
    chans, height, width = model.default_cfg["input_size"]
    return torch.randn(batch, chans, min(height, side), min(width, side))


def test_zoo_is_covered():
    assert len(ZOO) >= 90  # the count of networks; every one is a case below


@pytest.mark.parametrize("name", ZOO)
def test_forward(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = small_input(model, 1)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, model.num_classes)
    assert not out.isnan().any()


@pytest.mark.parametrize("name", ZOO)
def test_backward(name):
    """Training mode (the chains' training forms): every parameter gets a gradient."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=42).train()
    out = model(small_input(model, 2))
    assert out.shape == (2, 42) and not out.isnan().any()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert sum(p.grad.numel() for p in model.parameters()) == sum(
        p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ZOO)
def test_default_cfg(name):
    """timm's ``test_model_default_cfgs`` at the cfg's input size."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    cfg = model.default_cfg
    assert cfg is model.pretrained_cfg
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    pool = cfg["pool_size"]
    x = torch.randn(1, *cfg["input_size"])
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, model.num_features, *pool)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        logits = model(x)

        model.reset_classifier(0)
        assert model.num_classes == 0 and cfg["num_classes"] == 0
        pooled = model(x)
        assert pooled.shape == pre.shape and torch.allclose(pooled, pre)

        model.reset_classifier(0, "")  # no classifier, no pooling
        assert torch.equal(model(x), feats)
        model.reset_classifier(3, "avg")
        assert model(x).shape == (1, 3)
        model.reset_classifier(0, "max")
        assert torch.equal(model(x), feats.amax((2, 3)))

        unpooled = create_model(name, num_classes=0, global_pool="").eval()
        unpooled.load_state_dict({k: v for k, v in state.items()
                                  if not k.startswith(cfg["classifier"] + ".")})
        assert torch.equal(unpooled(x), feats)
        pooled_again = create_model(name, global_pool="avg").eval()
        pooled_again.load_state_dict(state)
        assert torch.equal(pooled_again(x), logits)


@pytest.mark.parametrize("name", ZOO)
def test_features_only(name):
    """timm's ``test_model_forward_features``, with exact map sides and timm's
    ``FeatureInfo`` accessors."""
    torch.manual_seed(0)
    model = create_model(name, features_only=True).eval()
    assert model.default_cfg is model.pretrained_cfg
    assert model.default_cfg["architecture"] == create_model(name).pretrained_cfg["architecture"]
    info = model.feature_info
    channels, reduction = info.channels(), info.reduction()
    assert len(channels) >= 3
    x = small_input(model, 1, FEATURES)
    with torch.no_grad():
        maps = model(x)
    assert len(maps) == len(channels)
    for c, r, m in zip(channels, reduction, maps):
        assert m.shape == (1, c, math.ceil(x.shape[2] / r), math.ceil(x.shape[3] / r))
        assert not m.isnan().any()
    modules = dict(model.named_modules())
    assert all(info.module_name(i) in modules for i in info.out_indices)

    last = create_model(name, features_only=True, out_indices=(-1,)).eval()
    assert last.feature_info.out_indices == (len(info) - 1,)
    assert last.feature_info.channels() == [channels[-1]]
    with torch.no_grad():
        assert [m.shape for m in last(x)] == [maps[-1].shape]


def _released() -> list:
    from igc.models.pretrained import released

    names = list(released())
    return [pytest.param(n, marks=() if i == 0 else (pytest.mark.slow,))
            for i, n in enumerate(names)]


@pytest.mark.parametrize("name", _released())
def test_load_pretrained(name):
    """timm's ``test_model_load_pretrained`` / ``test_model_features_pretrained`` over the
    released weights (tags included): another ``in_chans`` and ``num_classes``, no
    classifier, features only; the loaded layers are the released ones."""
    reference = create_model(name, pretrained=True).eval()
    chans = reference.default_cfg["input_size"][0]
    other = 3 if chans == 1 else 1
    adapted = create_model(name, pretrained=True, in_chans=other, num_classes=5)
    assert adapted.num_classes == 5 and adapted.default_cfg["input_size"][0] == other
    assert adapted.stem[0].weight.shape[1] == other
    headless = create_model(name, pretrained=True, in_chans=other, num_classes=0)
    assert isinstance(headless.get_classifier(), nn.Identity)
    kept = headless.state_dict()
    for key, value in reference.state_dict().items():  # all but the adapted and the head
        if not key.startswith(("stem.0.", "classifier.")):
            assert torch.equal(kept[key], value), key
    features = create_model(name, pretrained=True, features_only=True).eval()
    x = small_input(reference, 2)
    with torch.no_grad():
        maps = features(x)
        last = maps[-1] if reference.final_conv is None else reference.final_conv(maps[-1])
        assert torch.equal(last, reference.forward_features(x))


def test_feature_info_has_timms_accessors():
    """The semantics of timm's ``FeatureInfo`` (timm/models/_features.py): accessors over
    ``out_indices`` by default, over the given stage(s) otherwise; indexing and ``len``
    over every stage."""
    stages = [dict(num_chs=8 * 2**i, reduction=2**i, module=f"stages.{i}") for i in range(4)]
    info = FeatureInfo(stages, out_indices=(1, 3))
    assert info.out_indices == (1, 3) and len(info) == 4 and info[0] is stages[0]
    assert info.channels() == [16, 64] and info.reduction() == [2, 8]
    assert info.module_name() == ["stages.1", "stages.3"]
    assert info.channels(2) == 32 and info.reduction([0, 2]) == [1, 4]
    assert info.module_name(-1) == "stages.3"
    assert info.get_dicts() == [stages[1], stages[3]]
    assert info.get_dicts(keys=["num_chs"]) == [{"num_chs": 16}, {"num_chs": 64}]
    assert info.get_dicts(keys=["reduction"], idx=0) == {"reduction": 1}
    assert info.get("num_chs", [3, 0]) == [64, 8]
    every = FeatureInfo(stages)
    assert every.out_indices == (0, 1, 2, 3) and every.channels() == [8, 16, 32, 64]
    other = every.from_other((0,))
    assert other.channels() == [8] and other[0] is not stages[0] and other[0] == stages[0]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings(  # from torch.fx's GraphModule.__init__, not from igc
    "ignore:The TorchScript type system doesn't support instance-level:UserWarning")
@pytest.mark.parametrize("name", ZOO)
def test_torchscript(name):
    """``torch.jit.script`` of the network (and of its fx trace) computes what it does."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = small_input(model, 1)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-6)
        traced = torch.jit.script(torch.fx.symbolic_trace(model))
        torch.testing.assert_close(traced(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ZOO)
def test_fx_forward(name):
    """``torch.fx.symbolic_trace`` gives a graph that computes exactly what the network
    does (timm asserts equality)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    graph = torch.fx.symbolic_trace(model)
    x = small_input(model, 1)
    with torch.inference_mode():
        assert torch.equal(graph(x), model(x))


@pytest.mark.parametrize("name", ZOO)
def test_fx_backward(name):
    """A graph traced in training mode trains: every parameter gets a gradient, and its
    output is the training-mode network's in the grouped form (which a traced chain
    computes; the other forms compute the same function: tests/test_forms.py)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=42).train()
    graph = torch.fx.symbolic_trace(model)
    x = small_input(model, 2)
    out = graph(x)
    assert out.shape == (2, 42) and not out.isnan().any()
    out.mean().backward()
    assert all(p.grad is not None for p in graph.parameters())
    assert sum(p.grad.numel() for p in graph.parameters()) == sum(
        p.numel() for p in model.parameters())
    assert torch.equal(out, set_training_form(model, "grouped")(x))


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("pool", ["mean", "avgmax", "AVG", 1, None])
def test_unknown_global_pool_is_a_one_line_error(pool):
    model = create_model("igcv2_c64_d8")
    classifier, before, classes = model.get_classifier(), model.global_pool, model.num_classes
    if pool is not None:
        with pytest.raises(IGCError, match="global_pool") as err:
            model.reset_classifier(5, pool)
        assert "\n" not in str(err.value)
        assert model.get_classifier() is classifier and model.global_pool is before
        assert model.num_classes == classes
        for features_only in (False, True):
            with pytest.raises(IGCError, match="global_pool"):
                create_model("igcv2_c64_d8", global_pool=pool, features_only=features_only)
    else:  # None keeps the pooling
        model.reset_classifier(5, pool)
        assert model.global_pool is before and model.num_classes == 5


@pytest.mark.parametrize("num_classes", [-1, 2.5, True])
def test_bad_num_classes_in_reset_classifier_is_a_one_line_error(num_classes):
    model = create_model("igcv2_025")
    classifier = model.get_classifier()
    with pytest.raises(IGCError, match="num_classes") as err:
        model.reset_classifier(num_classes)
    assert "\n" not in str(err.value) and model.get_classifier() is classifier


def test_unpooled_features_need_a_network_without_classifier():
    with pytest.raises(IGCError, match="num_classes=0") as err:
        create_model("igcv2_c64_d8", global_pool="")
    assert "\n" not in str(err.value)
    model = create_model("igcv2_c64_d8", num_classes=0, global_pool="")
    with pytest.raises(IGCError, match="num_classes=0"):
        model.reset_classifier(4)  # keeps global_pool=''
    assert model.num_classes == 0 and isinstance(model.global_pool, nn.Identity)
    model.reset_classifier(4, "avg")
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4)
    features = create_model("igcv2_c64_d8", features_only=True, global_pool="")  # ignored
    assert len(features(torch.randn(1, 3, 8, 8))) == 3
