"""timm's model interface on every network of the zoo: features, head, classifier reset,
feature extraction, norm/activation layers and the explicit initialisation."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from igc.analysis.count import count_macs, count_params
from igc.errors import IGCError
from igc.models.net import GroupClassifier, IGCFeatures, IGCNet
from igc.models.registry import create_model, list_models

#: One network of every family and head kind (the fast lane); every network is slow.
REPRESENTATIVES = ["igcv2_fmnist", "igcv2_c64_d8", "igcv1_c48_d8_tiny", "xception_c58_d20",
                   "igcv2star_c216_d20", "xception_8l_c64", "mobilenetv1_025", "igcv2_025",
                   "igcv3_070", "mobilenetv2_070"]
SIZE = 32  # small inputs: the ImageNet networks end at 1x1


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def side(size: int, reduction: int) -> int:
    """A map's side after ``log2(reduction)`` stride-2 3x3 convolutions with padding 1."""
    while reduction > 1:
        size, reduction = (size + 1) // 2, reduction // 2
    return size


def check_interface(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert isinstance(model, IGCNet)
    chans, _, _ = model.pretrained_cfg["input_size"]
    x = torch.randn(2, chans, SIZE, SIZE)
    info = model.feature_info
    assert len(info) == len(model.stages) and info.module_name()[-1].startswith("stages.")
    assert all(b >= a for a, b in zip(info.reduction(), info.reduction()[1:]))
    with torch.no_grad():
        feats = model.forward_features(x)
        r = info[-1]["reduction"]
        assert feats.shape == (2, model.num_features, side(SIZE, r), side(SIZE, r))
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        logits = model(x)
        assert logits.shape == (2, model.num_classes)
        assert torch.equal(model.forward_head(feats), logits)
        kind = type(model.get_classifier())
        model.reset_classifier(7)
        assert type(model.get_classifier()) is kind and model(x).shape == (2, 7)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity)
        assert torch.allclose(model(x), pooled)

    extractor = create_model(name, features_only=True)
    assert isinstance(extractor, IGCFeatures)
    assert set(extractor.state_dict()) <= set(model.state_dict())
    extractor.load_state_dict({k: v for k, v in model.state_dict().items()
                               if k in extractor.state_dict()})
    extractor.eval()
    with torch.no_grad():
        maps = extractor(x)
    assert [m.shape[1] for m in maps] == info.channels()
    assert [m.shape[-1] for m in maps] == [side(SIZE, f["reduction"]) for f in info]
    if model.final_conv is None:
        assert torch.equal(maps[-1], feats)
    last_two = create_model(name, features_only=True, out_indices=(-2, 0))
    assert last_two.out_indices == (0, len(info) - 2)
    assert last_two.feature_info.channels() == [info[0]["num_chs"], info[-2]["num_chs"]]
    assert [m.shape[1] for m in last_two(x)] == last_two.feature_info.channels()


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_interface_of_each_family(name):
    check_interface(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(list_models()) - set(REPRESENTATIVES)))
def test_interface_of_every_network(name):
    check_interface(name)


@pytest.mark.parametrize("out_indices", [(3,), (-4,), (), (0, 0), (0, -3), ("a",), (1.5,)])
def test_bad_out_indices_are_one_line_errors(out_indices):
    with pytest.raises(IGCError, match="out_indices") as err:
        create_model("igcv2_c64_d8", features_only=True, out_indices=out_indices)
    assert "\n" not in str(err.value)


def test_out_indices_need_features_only_and_num_classes_is_checked():
    with pytest.raises(IGCError, match="features_only"):
        create_model("igcv2_c64_d8", out_indices=(0,))
    for bad in (-1, 2.5):
        with pytest.raises(IGCError, match="num_classes"):
            create_model("igcv2_c64_d8", num_classes=bad)
    with pytest.raises(IGCError, match="in_chans"):
        create_model("igcv2_c64_d8", in_chans=0)


def test_headless_network_returns_pooled_features():
    model = create_model("igcv3_070", num_classes=0).eval()
    assert model.num_features == 896 and isinstance(model.get_classifier(), nn.Identity)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 896)


def test_inverted_networks_end_their_features_in_the_1280_convolution():
    """timm's MobileNetV2: num_features 1280, the 320 -> 1280 1x1 in forward_features."""
    for name in ("igcv3_100", "mobilenetv2_100"):
        model = create_model(name)
        assert model.num_features == 1280 and model.feature_info[-1]["num_chs"] == 320
        assert model.final_conv[0].in_channels == 320
        assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]


def test_igcv2_group_classifier_is_kept_and_reset():
    model = create_model("igcv2_100")
    classifier = model.get_classifier()
    assert isinstance(classifier, GroupClassifier)
    assert count_params(classifier) == 2048 * 1000 // 2 + 1000  # 2 branches + bias
    model.reset_classifier(100)  # 2 branches divide 2048 and 100
    assert count_params(model.get_classifier()) == 2048 * 100 // 2 + 100
    model.reset_classifier(11)  # 11 classes: dense
    assert count_params(model.get_classifier()) == 2048 * 11 + 11


@pytest.mark.parametrize("name", ["igcv2_c64_d8", "igcv1_c48_d8", "xception_c58_d20",
                                  "mobilenetv1_025", "igcv2_025", "igcv3_070"])
def test_group_norm_and_silu_end_to_end(name):
    norm = functools.partial(nn.GroupNorm, 1)  # any width, e.g. the 35-channel stem
    model = create_model(name, num_classes=10, norm_layer=norm, act_layer=nn.SiLU)
    kinds = {type(m) for m in model.modules()}
    assert nn.GroupNorm in kinds and nn.SiLU in kinds
    assert not kinds & {nn.BatchNorm2d, nn.ReLU, nn.ReLU6}
    x = torch.randn(2, 3, SIZE, SIZE)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert count_macs(model, SIZE) > 0
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", ["igcv2_c64_d20", "igcv2_100", "igcv3_100"])
def test_explicit_initialisation(name):
    """Convolutions He normal (fan-out), norm layers 1/0, classifier N(0, 0.01), biases 0."""
    torch.manual_seed(0)
    model = create_model(name)
    classifier = set(model.get_classifier().modules())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert not m.bias.any()
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.numel() >= 4000:
            if m in classifier:
                expected = 0.01
            else:  # He normal, fan-out = out_channels x kernel area
                expected = (2 / (m.weight.shape[0] * m.weight[0, 0].numel())) ** 0.5
            assert abs(m.weight.std().item() / expected - 1) < 0.1, (m, expected)
            assert abs(m.weight.mean().item()) < 0.1 * expected
        if getattr(m, "bias", None) is not None and not isinstance(m, nn.BatchNorm2d):
            assert not m.bias.any()
