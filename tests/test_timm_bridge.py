"""The optional timm bridge: a no-op with one line where timm does not import; against a
fake minimal ``timm`` (the parts of timm's registry and factory the bridge relies on) the
registration itself; against the real timm where it imports."""

from __future__ import annotations

import dataclasses
import sys
import types
import warnings
from typing import Any

import pytest
import torch

from igc.integrations import timm as bridge
from igc.models import create_model, list_models

#: timm's ``PretrainedCfg`` fields (timm/models/_pretrained.py), which a cfg must stay within.
PRETRAINED_CFG_FIELDS = {
    "url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture",
    "tag", "custom_load", "input_size", "test_input_size", "min_input_size",
    "fixed_input_size", "interpolation", "crop_pct", "test_crop_pct", "crop_mode", "mean",
    "std", "num_classes", "label_offset", "label_names", "label_descriptions", "pool_size",
    "test_pool_size", "first_conv", "classifier", "license", "description", "origin_url",
    "paper_name", "paper_ids", "notes"}


def _real_timm() -> tuple[Any, str]:
    saved = {k: v for k, v in sys.modules.items() if k == "timm" or k.startswith("timm.")}
    try:
        import timm
    except Exception as exc:  # timm imports torchvision, which may not load here
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for k in [k for k in sys.modules if k == "timm" or k.startswith("timm.")]:
            if k not in saved:
                sys.modules.pop(k)
    return timm, ""


REAL_TIMM, WHY_NOT = _real_timm()


class FakeTimm:
    """timm's registry protocol: ``register_model(fn)`` reads the cfg from
    ``sys.modules[fn.__module__].default_cfgs[fn.__name__]`` (a dict becomes a
    ``PretrainedCfg``, so unknown keys fail); ``create_model`` drops ``None`` keywords and
    calls ``fn(pretrained=, pretrained_cfg=, pretrained_cfg_overlay=, **kwargs)``."""

    def __init__(self) -> None:
        self.entrypoints: dict[str, Any] = {}
        self.cfgs: dict[str, dict] = {}
        cfg_class = dataclasses.make_dataclass(
            "PretrainedCfg", [(f, Any, dataclasses.field(default=None))
                              for f in sorted(PRETRAINED_CFG_FIELDS)])
        self.cfg_class = cfg_class

    def register_model(self, fn):
        module = sys.modules[fn.__module__]
        cfg = module.default_cfgs[fn.__name__]
        self.cfgs[fn.__name__] = dataclasses.asdict(self.cfg_class(**cfg))
        self.entrypoints[fn.__name__] = fn
        return fn

    def is_model(self, name: str) -> bool:
        return name.split(".")[0] in self.entrypoints

    def model_entrypoint(self, name: str):
        return self.entrypoints[name.split(".")[0]]

    def create_model(self, name: str, pretrained: bool = False, pretrained_cfg=None,
                     pretrained_cfg_overlay=None, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        arch, _, tag = name.partition(".")
        return self.entrypoints[arch](pretrained=pretrained, pretrained_cfg=pretrained_cfg or tag,
                                      pretrained_cfg_overlay=pretrained_cfg_overlay, **kwargs)


@pytest.fixture
def fake_timm(monkeypatch):
    """A fake ``timm`` in sys.modules, holding timm's own ``mobilenetv2_100``; the bridge's
    module-level cfgs are restored after."""
    fake = FakeTimm()
    package = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    for attr in ("register_model", "is_model", "model_entrypoint", "create_model"):
        setattr(models, attr, getattr(fake, attr))
    package.models = models
    package.create_model = fake.create_model
    monkeypatch.setitem(sys.modules, "timm", package)
    monkeypatch.setitem(sys.modules, "timm.models", models)
    timm_own = types.ModuleType("timm.models.mobilenetv2")
    timm_own.default_cfgs = {"mobilenetv2_100": {"num_classes": 1000}}
    monkeypatch.setitem(sys.modules, "timm.models.mobilenetv2", timm_own)

    def mobilenetv2_100(**kwargs):
        return "timm's own"

    mobilenetv2_100.__module__ = "timm.models.mobilenetv2"
    fake.register_model(mobilenetv2_100)
    monkeypatch.setattr(bridge, "default_cfgs", {})
    return fake


def test_without_timm_register_is_a_one_line_no_op(monkeypatch):
    """Here timm does not import (or is hidden): nothing registered, one warning line."""
    if REAL_TIMM is not None:
        monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    with pytest.warns(RuntimeWarning, match=r"timm cannot be imported here .*registered "
                                            r"nothing") as record:
        assert bridge.register() == []
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert bridge.default_cfgs == {} or REAL_TIMM is not None


def test_every_zoo_network_is_registered_with_its_cfg(fake_timm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = bridge.register()
    zoo = list_models()
    assert len(names) == len(zoo) and len(set(names)) == len(zoo)
    # timm's own mobilenetv2_100 is kept; ours is igc_mobilenetv2_100
    assert "igc_mobilenetv2_100" in names and "mobilenetv2_100" not in names
    assert fake_timm.create_model("mobilenetv2_100") == "timm's own"
    assert set(names) - {"igc_mobilenetv2_100"} <= set(zoo)
    cfg = fake_timm.cfgs["igcv2_100"]
    assert cfg["architecture"] == "igcv2_100" and cfg["input_size"] == (3, 224, 224)
    assert cfg["crop_pct"] == 224 / 256 and cfg["interpolation"] == "bilinear"
    assert cfg["num_classes"] == 1000 and cfg["first_conv"] == "stem.0"
    assert cfg["classifier"] == "classifier" and "arXiv:1804.06202" in cfg["paper_ids"]
    assert cfg["file"] is None  # no released weights
    assert bridge.register() == names  # idempotent
    assert len(fake_timm.entrypoints) == len(zoo) + 1


def test_timm_create_model_builds_the_zoo_network(fake_timm, tmp_path):
    bridge.register(["igcv2_fmnist", "igcv2_c64_d8", "igcv2_025", "mobilenetv2_100"])
    model = fake_timm.create_model("igcv2_fmnist", num_classes=None)
    reference = create_model("igcv2_fmnist")
    assert type(model) is type(reference)
    assert model.pretrained_cfg["architecture"] == "igcv2_fmnist"
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters())
    feats = fake_timm.create_model("igcv2_c64_d8", features_only=True, out_indices=(1,),
                                   width=8)
    assert feats.feature_info.channels() == [16]
    assert fake_timm.create_model("igc_mobilenetv2_100", num_classes=7).num_classes == 7
    torch.manual_seed(0)
    trained = create_model("igcv2_fmnist").eval()
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    loaded = fake_timm.create_model("igcv2_fmnist", pretrained=True,
                                    pretrained_cfg_overlay={"file": str(path)}).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))
    from igc.errors import IGCError

    with pytest.raises(IGCError, match="no pretrained tag 'in1k'"):
        fake_timm.create_model("igcv2_fmnist.in1k")
    with pytest.raises(IGCError, match="no released weights"):
        fake_timm.create_model("igcv2_025", pretrained=True)  # ImageNet: none released


def test_released_weights_appear_as_the_cfg_file(fake_timm, tmp_path, monkeypatch):
    import hashlib

    from igc.models.pretrained import WEIGHTS_ENV

    torch.save(create_model("igcv2_fmnist").state_dict(), tmp_path / "f.pt")
    digest = hashlib.sha256((tmp_path / "f.pt").read_bytes()).hexdigest()
    (tmp_path / "weights.toml").write_text(
        f'[models.igcv2_fmnist]\nfile = "f.pt"\nsha256 = "{digest}"\n'
        'dataset = "fashion-mnist"\nrecipe = "r"\ncommand = "c"\nepochs = 1\ntop1 = 90.0\n'
        'top1_mean = 90.0\ntop1_std = 0.0\nseeds = [0]\ncommit = "abc"\n')
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    bridge.register(["igcv2_fmnist"])
    assert fake_timm.cfgs["igcv2_fmnist"]["file"] == str(tmp_path / "f.pt")
    assert fake_timm.create_model("igcv2_fmnist", pretrained=True).pretrained_cfg[
        "weights"]["source"] == "released"


@pytest.mark.skipif(REAL_TIMM is None, reason=f"timm does not import here ({WHY_NOT})")
def test_real_timm_creates_zoo_networks():  # pragma: no cover - needs timm
    import timm

    names = bridge.register()
    assert "igcv2_100" in names and "igcv2_100" in timm.list_models("igcv2_*")
    model = timm.create_model("igcv2_100", num_classes=10)
    assert model.num_classes == 10 and model.pretrained_cfg["architecture"] == "igcv2_100"
    assert timm.create_model("mobilenetv2_100").__class__.__module__.startswith("timm")
