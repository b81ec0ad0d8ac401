"""pytorchcv's ImageNet state dicts load into the zoo's networks and compute what pytorchcv
computes (within 1e-4 relative), in PyTorch, after ``igc.deploy.optimize`` and through
ONNX; other networks' and damaged state dicts are refused in one line.

pytorchcv's networks are built with random weights and random BatchNorm statistics, so
every layer, permutation and head is exercised (trained weights would not add a check).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from igc.errors import IGCError
from igc.models import create_model
from igc.models.pytorchcv import CONVERSIONS

try:
    from pytorchcv.models import igcv3 as cv_igcv3
    from pytorchcv.models import mobilenet as cv_mobilenet
    from pytorchcv.models import mobilenetv2 as cv_mobilenetv2
    from pytorchcv.models.common.tutti import channel_shuffle as cv_shuffle
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"pytorchcv is not installed ({exc}); scripts/setup.sh installs it with "
                "--no-deps", allow_module_level=True)

MODULES = {"igcv3": cv_igcv3, "mobilenet": cv_mobilenet, "mobilenetv2": cv_mobilenetv2}
#: Relative tolerance of the issue: max |ours - pytorchcv| / max |pytorchcv|.
TOLERANCE = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _threads(one_thread):
    yield


def pytorchcv_net(name: str, seed: int = 0) -> nn.Module:
    """pytorchcv's ``name`` with random weights and random BatchNorm statistics: the
    statistics of random images through the random network (so activations keep their
    scale over 17 to 32 blocks, as in a trained network, and float rounding is not
    amplified from block to block), each mean shifted and each variance scaled at random;
    random BatchNorm scales and shifts, random classifier bias."""
    family = name.split("_")[0].removesuffix("b")
    torch.manual_seed(seed)
    net = getattr(MODULES[family], name)()
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
        net.train()(torch.randn(4, 3, 224, 224, generator=g))
        for m in norms:
            c = m.num_features
            m.running_mean.add_(torch.randn(c, generator=g) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(c, generator=g) * 0.5 + 0.75)
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return net.eval()


def saved(tmp_path, name: str, seed: int = 0) -> tuple[nn.Module, str]:
    net = pytorchcv_net(name, seed)
    path = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), path)
    return net, str(path)


def relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


IMAGES = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def _fresh_python(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (stripped)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_model_modules_import_without_torchvision():
    """pytorchcv's three model modules import in a fresh interpreter without torchvision."""
    code = ("import sys, pytorchcv.models.igcv3, pytorchcv.models.mobilenet, "
            "pytorchcv.models.mobilenetv2; print('torchvision' in sys.modules)")
    assert _fresh_python(code) == "False"


@pytest.mark.parametrize("name", sorted(CONVERSIONS))
def test_converted_weights_compute_what_pytorchcv_computes(tmp_path, name):
    """PyTorch, igc.deploy.optimize and ONNX (onnxruntime) outputs within 1e-4 relative."""
    net, path = saved(tmp_path, name)
    zoo, _ = CONVERSIONS[name]
    model = create_model(zoo, pretrained=path).eval()
    weights = model.pretrained_cfg["weights"]
    assert weights["source"] == "pytorchcv" and weights["converted_from"] == name
    with torch.no_grad():
        expected = net(IMAGES)
        assert relative(model(IMAGES), expected) <= TOLERANCE
        from igc.deploy import optimize

        fast = optimize(model)
        assert relative(fast(IMAGES), expected) <= TOLERANCE
    try:
        from igc.deploy.export import onnx_bytes, onnx_session
        session = onnx_session(onnx_bytes(fast, 3, 224))
    except (ImportError, IGCError) as exc:  # the export extra is optional
        pytest.skip(f"ONNX export not available here ({exc})")
    got = torch.from_numpy(session.run(None, {"input": IMAGES.numpy()})[0])
    assert relative(got, expected) <= TOLERANCE


def test_a_wrong_shuffle_convention_would_be_caught(tmp_path):
    """The shuffles agree with pytorchcv's (same permutation on random data), and the
    comparison above detects the other convention: IGCV3 with each shuffle inverted
    (``g`` <-> ``C/g``) differs by far more than the tolerance."""
    from igc.layers.shuffle import ChannelShuffle, channel_shuffle

    x = torch.randn(2, 12, 3, 3)
    assert torch.equal(channel_shuffle(x, 2), cv_shuffle(x, 2))
    assert not torch.equal(channel_shuffle(x, 6), cv_shuffle(x, 2))
    net, path = saved(tmp_path, "igcv3_w1")
    model = create_model("igcv3_100", pretrained=path).eval()
    shuffled = [f for f in model.modules() if isinstance(f, nn.Sequential)
                and isinstance(getattr(f, "shuffle", None), ChannelShuffle)]
    assert len(shuffled) == 32  # one per IGCV3 block, after its first group 1x1
    with torch.no_grad():
        expected = net(IMAGES)
        for factor in shuffled:
            factor.shuffle.groups = factor.conv.out_channels // factor.shuffle.groups
        assert relative(model(IMAGES), expected) > 100 * TOLERANCE


def test_the_88_parameters_of_mobilenetv2():
    """pytorchcv's mobilenetv2_w1 has a 1x1 expansion (32 -> 32, BN) in the t = 1 block
    (+1024 + 64) and a bias-free classifier (-1000): 88 more than ours; with
    ``first_expand=True`` ours has its convolution and keeps the 1000 biases."""
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    theirs = count(cv_mobilenetv2.mobilenetv2_w1())
    ours = count(create_model("mobilenetv2_100"))
    expanded = count(create_model("mobilenetv2_100", first_expand=True))
    expansion, classes = 32 * 32 + 2 * 32, 1000
    assert theirs - ours == expansion - classes == 88
    assert expanded - ours == expansion and expanded - theirs == classes
    assert count(cv_mobilenetv2.mobilenetv2b_w1()) == ours - classes
    with pytest.raises(IGCError, match=r"first_expand must be (True|true) or (False|false)"):
        create_model("mobilenetv2_100", first_expand="yes")
    from igc.layers import MobileNetV2Block

    assert len(MobileNetV2Block(8, 8, expansion=1, expand=True).body.factors) == 3
    with pytest.raises(IGCError, match="needs hidden == in_ch"):
        MobileNetV2Block(8, 8, expansion=6, expand=False)


def test_other_networks_and_damaged_files_are_refused(tmp_path):
    _, v2 = saved(tmp_path, "mobilenetv2_w1")
    with pytest.raises(IGCError, match=r"pytorchcv's mobilenetv2_w1 .*'mobilenetv2_100'.*not "
                                       r"'igcv3_100'") as err:
        create_model("igcv3_100", pretrained=v2)
    assert "\n" not in str(err.value)
    with pytest.raises(IGCError, match=r"holds weights of pytorchcv's mobilenet_w1"):
        create_model("mobilenetv1_050", pretrained=saved(tmp_path, "mobilenet_w1")[1])
    with pytest.warns(UserWarning, match="loaded partly"):
        create_model("igcv3_100", pretrained=v2, strict=False)
    torch.save(cv_igcv3.igcv3_wd2().state_dict(), tmp_path / "half.pth")
    with pytest.raises(IGCError, match=r"pytorchcv's igcv3_wd2, which igc does not convert; "
                                       r"convertible: igcv3_w1 -> igcv3_100"):
        create_model("igcv3_100", pretrained=tmp_path / "half.pth")
    state = pytorchcv_net("igcv3_w1").state_dict()
    extra = dict(state, **{"features.extra.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(IGCError, match="outside its layout"):
        create_model("igcv3_100", pretrained=tmp_path / "extra.pth")
    dropped = {k: v for k, v in state.items() if "stage3.unit2.conv3.bn.weight" not in k}
    torch.save(dropped, tmp_path / "dropped.pth")
    with pytest.raises(IGCError, match=r"does not fit model 'igcv3_100': 1 missing "
                                       r"\(stages.2.1.body.factors.2.bn.weight\)"):
        create_model("igcv3_100", pretrained=tmp_path / "dropped.pth")
    fewer = {k: v for k, v in state.items() if ".stage5.unit7." not in k}
    torch.save(fewer, tmp_path / "fewer.pth")
    with pytest.raises(IGCError, match=r"igcv3_w1 keys but 31 units \(igcv3 has 32\)"):
        create_model("igcv3_100", pretrained=tmp_path / "fewer.pth")


def test_files_without_batchnorm_counters_load(tmp_path):
    """State dicts saved before PyTorch 0.4.1 have no num_batches_tracked."""
    net = pytorchcv_net("mobilenet_wd4")
    old = {k: v for k, v in net.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(old, tmp_path / "old.pth")
    model = create_model("mobilenetv1_025", pretrained=tmp_path / "old.pth").eval()
    with torch.no_grad():
        assert relative(model(IMAGES), net(IMAGES)) <= TOLERANCE


def test_new_classes_and_input_channels_with_converted_weights(tmp_path):
    """num_classes=10 re-initialises only the classifier; in_chans=1 sums the first
    convolution over RGB: a gray image equals pytorchcv's output on it repeated 3 times."""
    net, path = saved(tmp_path, "mobilenet_wd4")
    x = IMAGES[:1]
    few = create_model("mobilenetv1_025", pretrained=path, num_classes=10).eval()
    assert few.get_classifier().out_features == 10
    with torch.no_grad():
        assert relative(few.forward_head(few.forward_features(x), pre_logits=True),
                        net.features(x).flatten(1)) <= TOLERANCE
    gray = create_model("mobilenetv1_025", pretrained=path, in_chans=1).eval()
    with torch.no_grad():
        assert relative(gray(x[:, :1]), net(x[:, :1].expand(-1, 3, -1, -1))) <= TOLERANCE


def test_conversion_module_imports_nothing_of_pytorchcv():
    """The converter works on state dicts alone (pytorchcv is needed only by this test)."""
    code = ("import sys, igc.models.pytorchcv, igc.models.pretrained; "
            "print(any(m.startswith('pytorchcv') for m in sys.modules))")
    assert _fresh_python(code) == "False"
