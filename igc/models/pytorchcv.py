"""pytorchcv's ImageNet state dicts converted to the zoo's networks.

pytorchcv (``osmr/imgclsmob``) publishes ImageNet weights of IGCV3, MobileNetV1 and
MobileNetV2. Its networks compute exactly what ours do, block by block:

================  ===============================  ======================================
pytorchcv         igc                              per unit ``features.stageS.unitU``
================  ===============================  ======================================
igcv3_w1          ``igcv3_100``                    ``conv1`` (group 1x1, g = 2, BN), shuffle,
                                                   ``conv2`` (3x3 channel-wise, BN, ReLU6),
                                                   ``conv3`` (group 1x1, g = 2, BN)
mobilenet_w1,     ``mobilenetv1_100``, ``_050``,   ``dw_conv`` (3x3 channel-wise, BN, ReLU),
_wd2, _wd4        ``_025``                         ``pw_conv`` (1x1, BN, ReLU)
mobilenetv2_w1    ``mobilenetv2_100`` built with   ``conv1`` (1x1, BN, ReLU6), ``conv2``,
                  ``first_expand=True``            ``conv3`` (1x1, BN); ``stage1.unit1`` too
mobilenetv2b_w1   ``mobilenetv2_100``              the same without ``stage1.unit1.conv1``
================  ===============================  ======================================

Names: ``features.init_block.{conv,bn}`` -> ``stem.{0,1}``;
``features.stageS.unitU.<k-th part>.{conv,bn}`` -> ``stages.{S-1}.{U-1}.body.factors.k.
{conv,bn}`` (the unit's parts in order: ``conv1 < conv2 < conv3``, ``dw_conv < pw_conv``);
``features.final_block.{conv,bn}`` -> ``final_conv.{0,1}``; ``output`` -> ``classifier``.
pytorchcv's stages are ours (one per output resolution). Layouts:

* **Channel shuffle**: pytorchcv's ``channel_shuffle(x, g)`` views the channels as
  ``(g, C/g)`` and transposes, ShuffleNet's convention, exactly
  :func:`igc.layers.shuffle.channel_shuffle`; IGCV3 shuffles after the first group 1x1 with
  g = 2 in both, so no weight is permuted.
* **MobileNetV2's classifier** is a 1x1 convolution without bias, ``(1000, 1280, 1, 1)``:
  its weight becomes the linear classifier's ``(1000, 1280)``, the bias zeros (exact).
* **BatchNorm counters**: a file saved before PyTorch 0.4.1 has no ``num_batches_tracked``
  (PyTorch's own loader fills it in); the converter adds zeros (it only matters for
  training with ``momentum=None``).
* **MobileNetV2's first block**: pytorchcv's ``mobilenetv2_w1`` keeps a 1x1 expansion
  (32 -> 32, BN, ReLU6) in the ``t = 1`` block, which the paper's block (and our default)
  omits: 1,024 + 64 = 1,088 parameters more, minus our classifier's 1,000 biases = the 88
  by which its 3,504,960 parameters exceed our 3,504,872. It loads into
  ``create_model("mobilenetv2_100", first_expand=True)`` (the converter passes that
  option); ``mobilenetv2b_w1`` (no such convolution) loads into the default network.

The network is recognised from the keys and shapes (:func:`identify`), so a state dict of
another pytorchcv network is named in the error, never half-loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from igc.errors import IGCError

__all__ = ["CONVERSIONS", "Converted", "convert", "identify", "is_pytorchcv"]

#: pytorchcv name -> (zoo name, builder options) of every conversion.
CONVERSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "igcv3_w1": ("igcv3_100", {}),
    "mobilenet_w1": ("mobilenetv1_100", {}),
    "mobilenet_wd2": ("mobilenetv1_050", {}),
    "mobilenet_wd4": ("mobilenetv1_025", {}),
    "mobilenetv2_w1": ("mobilenetv2_100", {"first_expand": True}),
    "mobilenetv2b_w1": ("mobilenetv2_100", {}),
}
#: pytorchcv's width suffix for the stem's width (32 at 1.0).
_WIDTHS = {32: "w1", 24: "w3d4", 16: "wd2", 8: "wd4"}
_UNIT = re.compile(r"^features\.stage(\d+)\.unit(\d+)\.(conv[123]|dw_conv|pw_conv)\."
                   r"(conv|bn)\.(\w+)$")
_FIXED = {"features.init_block.conv.": "stem.0.", "features.init_block.bn.": "stem.1.",
          "features.final_block.conv.": "final_conv.0.",
          "features.final_block.bn.": "final_conv.1.", "output.": "classifier."}
_PART_ORDER = ("conv1", "conv2", "conv3", "dw_conv", "pw_conv")
#: Units of each family (Table 8's 13 separable blocks; Table 10's 17 / 32 blocks).
_UNITS = {"mobilenet": 13, "mobilenetv2": 17, "mobilenetv2b": 17, "igcv3": 32}


@dataclass
class Converted:
    """A converted state dict: pytorchcv's ``name``, the zoo network ``model`` it loads
    into and the builder options ``model_args`` that network needs."""

    name: str
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)


def is_pytorchcv(state: Mapping[str, object]) -> bool:
    """Whether ``state`` has pytorchcv's ImageNet layout (``features.init_block``,
    ``output``)."""
    return "features.init_block.conv.weight" in state and "output.weight" in state


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    value = state.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else ()


def identify(state: Mapping[str, torch.Tensor]) -> str:
    """pytorchcv's name of the network ``state`` belongs to (``"igcv3_w1"``, ...); the family
    from the unit's parts and the second 1x1's groups, the width from the stem."""
    stem = _shape(state, "features.init_block.conv.weight")
    first = "features.stage1.unit1."
    if f"{first}dw_conv.conv.weight" in state:
        family = "mobilenet"
    else:
        mid = _shape(state, f"{first}conv2.conv.weight")
        last = _shape(state, f"{first}conv3.conv.weight")
        if len(mid) != 4 or len(last) != 4 or last[1] == 0 or mid[0] % last[1]:
            raise IGCError("state dict has pytorchcv's keys but no IGCV3, MobileNet or "
                           "MobileNetV2 units; igc converts only "
                           f"{', '.join(CONVERSIONS)}")
        groups = mid[0] // last[1]
        family = {1: "mobilenetv2", 2: "igcv3"}.get(groups, f"group-{groups} network")
        if family == "mobilenetv2" and f"{first}conv1.conv.weight" not in state:
            family = "mobilenetv2b"
    width = _WIDTHS.get(stem[0] if len(stem) == 4 else 0, f"stem{stem[:1]}")
    units = {m.group(1, 2) for m in map(_UNIT.match, state) if m}
    if family in _UNITS and len(units) != _UNITS[family]:
        raise IGCError(f"the state dict has pytorchcv's {family}_{width} keys but "
                       f"{len(units)} units ({family} has {_UNITS[family]}), which igc does "
                       "not convert; give an unmodified pytorchcv state dict")
    return f"{family}_{width}"


def _rename(key: str, parts: dict[tuple[int, int], list[str]]) -> str | None:
    unit = _UNIT.match(key)
    if unit:
        stage, index, part, layer, rest = unit.groups()
        k = parts[int(stage), int(index)].index(part)
        return f"stages.{int(stage) - 1}.{int(index) - 1}.body.factors.{k}.{layer}.{rest}"
    for old, new in _FIXED.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def convert(state: Mapping[str, torch.Tensor]) -> Converted:
    """``state`` (pytorchcv's layout) renamed and reshaped for the zoo network it belongs to
    (see the module docstring); IGCError for a network igc does not convert or a key
    outside the layout."""
    name = identify(state)
    if name not in CONVERSIONS:
        known = ", ".join(f"{k} -> {v[0]}" for k, v in CONVERSIONS.items())
        raise IGCError(f"the state dict is pytorchcv's {name}, which igc does not convert; "
                       f"convertible: {known}")
    model, args = CONVERSIONS[name]
    parts: dict[tuple[int, int], list[str]] = {}
    for key in state:
        unit = _UNIT.match(key)
        if unit:
            found = parts.setdefault((int(unit[1]), int(unit[2])), [])
            if unit[3] not in found:
                found.append(unit[3])
    for found in parts.values():
        found.sort(key=_PART_ORDER.index)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = _rename(key, parts)
        if new is None:
            raise IGCError(f"pytorchcv state dict of {name} has the key {key!r} outside its "
                           "layout; the file is not an unmodified pytorchcv state dict")
        out[new] = value
    weight = out.get("classifier.weight")
    if weight is not None and weight.dim() == 4:  # MobileNetV2's bias-free 1x1 conv
        if weight.shape[2:] != (1, 1) or "classifier.bias" in out:
            raise IGCError(f"pytorchcv {name}'s classifier has shape {tuple(weight.shape)}; "
                           "expected a bias-free 1x1 convolution")
        out["classifier.weight"] = weight.flatten(1)
        out["classifier.bias"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
    for key in [k for k in out if k.endswith(".running_mean")]:  # files of PyTorch < 0.4.1
        out.setdefault(key.removesuffix("running_mean") + "num_batches_tracked",
                       torch.zeros((), dtype=torch.long))
    return Converted(name, model, dict(args), out)
