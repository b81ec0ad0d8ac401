"""The ImageNet networks of the IGCV2 paper: IGCV2-alpha vs MobileNetV1-alpha (Table 8) and
IGCV3-alpha vs MobileNetV2-alpha (Table 10), each written as the table's rows.

* :data:`MOBILENET_V1_ROWS` / :data:`IGCV2_ROWS`: ``(in, out, stride, repeats)`` per row of
  Table 8 at width multiplier 1.0. No skip connections. IGCV2 blocks are the paper's
  non-linear block (Figure 5b) with ``g1 = g2 = 8`` branches, widening in the last 1x1;
  the classifier is an IGCV2* block without the 3x3: ONE group 1x1 convolution 2048 -> 1000
  with :data:`IGCV2_CLASSIFIER_GROUPS` = 2 branches and a bias. Table 8 prints ``g = 8``
  for it, but only 2 branches reproduce Table 9's parameters at every multiplier
  (4.1M / 1.3M / 0.5M: 8 branches give 3.9M / 1.1M / 0.3M, a dense layer 5.2M); the
  multiply-adds (564M / 156M / 46M) come from the five 1024-wide blocks either way.
* :data:`INVERTED_ROWS`: ``(t, c, n_mobilenetv2, n_igcv3, s)`` per row of Table 10; IGCV3
  doubles the repeats of every repeated row ("two IGCV3 blocks correspond to one block
  MobileNetV2"). The features end in ``final_conv``, a 1x1 convolution 320 -> 1280 with BN
  and ReLU6 (dense for MobileNetV2; for IGCV3 dense as in the official and pytorchcv code,
  ``head_groups=2`` for Table 10's starred block; ``num_features`` = 1280 as in timm's
  MobileNetV2), then pooling and a linear 1280 -> 1000 classifier.

Width multipliers (``width_rule``, one option per family): MobileNetV1 and IGCV2 use
``int(c * alpha)`` for every layer, which gives Table 9's counts exactly. MobileNetV2 and
IGCV3 take ``"paper"`` (default: ``round(c * alpha)`` made even, the head's 1280 scaled too;
the official IGCV3 code's even widths, and the only rule that gives Table 11's 0.7 numbers)
or ``"torchvision"`` (``_make_divisible(c * alpha, 8)``, head ``1280 * max(1, alpha)``).
At alpha = 1.0 both rules give the same network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from igc.errors import IGCError
from igc.layers import IGCV2Block, IGCV3Block, MobileNetV2Block, XceptionBlock
from igc.layers.chain import ActLayer, NormLayer
from igc.models.net import IGCNet, conv_norm_act

__all__ = [
    "IGCV2_ROWS", "INVERTED_ROWS", "MOBILENET_V1_ROWS", "ImageNetConfig", "igcv2_imagenet",
    "igcv3", "mobilenet_v1", "mobilenet_v2", "scale_width",
]

#: Table 8, MobileNetV1-1.0: stem 3 -> 32 (stride 2), then (in, out, stride, repeats).
MOBILENET_V1_ROWS = ((32, 64, 1, 1), (64, 128, 2, 1), (128, 128, 1, 1), (128, 256, 2, 1),
                     (256, 256, 1, 1), (256, 512, 2, 1), (512, 512, 1, 5), (512, 1024, 2, 1),
                     (1024, 1024, 1, 1))
#: Table 8, IGCV2-1.0: stem 3 -> 64 (stride 2), then (in, out, stride, repeats). The table's
#: extracted "x10" for the 1024 row is read as 5, as in MobileNetV1 (SPEC section 2).
IGCV2_ROWS = ((64, 128, 1, 1), (128, 256, 2, 1), (256, 256, 1, 1), (256, 512, 2, 1),
              (512, 512, 1, 1), (512, 1024, 2, 1), (1024, 1024, 1, 5), (1024, 2048, 2, 1),
              (2048, 2048, 1, 1))
#: Branches of the IGCV2* classifier's group 1x1 convolution(s) (2048 -> 1000); see above.
IGCV2_CLASSIFIER_GROUPS = (2,)
#: Table 10: (t, c, repeats in MobileNetV2, repeats in IGCV3, stride of the first).
INVERTED_ROWS = ((1, 16, 1, 1, 1), (6, 24, 2, 4, 2), (6, 32, 3, 6, 2), (6, 64, 4, 8, 2),
                 (6, 96, 3, 6, 1), (6, 160, 3, 6, 2), (6, 320, 1, 1, 1))
WIDTH_RULES = ("paper", "torchvision")


def scale_width(channels: int, alpha: float, rule: str) -> int:
    """A width under multiplier ``alpha``: ``"int"`` (MobileNetV1), ``"paper"`` (round,
    then the nearest even number above: the official IGCV3 code's even widths) or
    ``"torchvision"`` (``_make_divisible(c * alpha, 8)``)."""
    value = channels * alpha
    if rule == "int":
        return max(1, int(value))
    if rule == "paper":
        width = max(2, round(value))
        return width + width % 2
    if rule == "torchvision":
        width = max(8, int(value + 4) // 8 * 8)
        return width + 8 if width < 0.9 * value else width
    raise IGCError(f"unknown width rule {rule!r}; use one of {WIDTH_RULES}")


@dataclass(frozen=True)
class ImageNetConfig:
    """An ImageNet network of Tables 8 and 10, as data: its ``family`` (``"mobilenetv1"``,
    ``"igcv2"``, ``"mobilenetv2"``, ``"igcv3"``), width multiplier and the family's
    options (the defaults are the zoo's)."""

    family: str
    alpha: float
    width_rule: str = "int"
    groups: tuple[int, ...] = ()
    classifier_groups: tuple[int, ...] | None = None
    head_groups: int = 1
    first_expand: bool = False


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha <= 4:
        raise IGCError(f"width multiplier must be in (0, 4], got {alpha}")
    return float(alpha)


def _separable_net(config: ImageNetConfig, rows: tuple, stem: int, in_chans: int,
                   num_classes: int, block: Callable[..., nn.Module], layers: dict) -> IGCNet:
    """Stem, then one stage per distinct output resolution (Table 8's rows)."""
    w = lambda c: scale_width(c, config.alpha, "int")  # noqa: E731
    stages: list[list[nn.Module]] = [[]]
    for in_ch, out_ch, stride, repeats in rows:
        if stride == 2:
            stages.append([])
        for i in range(repeats):
            stages[-1].append(block(w(in_ch if i == 0 else out_ch), w(out_ch),
                                    stride if i == 0 else 1, **layers))
    return IGCNet(conv_norm_act(in_chans, w(stem), 3, 2, "relu", **layers),
                  [nn.Sequential(*s) for s in stages], num_classes,
                  classifier_groups=config.classifier_groups, config=config,
                  norm_layer=layers["norm_layer"])


def mobilenet_v1(alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3, *,
                 norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> IGCNet:
    """MobileNetV1-alpha (Table 8, right): nonlinear Xception blocks, linear classifier."""
    config = ImageNetConfig("mobilenetv1", _check_alpha(alpha))
    return _separable_net(
        config, MOBILENET_V1_ROWS, 32, in_chans, num_classes,
        lambda i, o, s, **kw: XceptionBlock(i, o, s, nonlinear=True, **kw),
        dict(norm_layer=norm_layer, act_layer=act_layer))


def igcv2_imagenet(alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                   groups: tuple[int, int] = (8, 8),
                   classifier_groups: tuple[int, ...] = IGCV2_CLASSIFIER_GROUPS, *,
                   norm_layer: NormLayer | None = None,
                   act_layer: ActLayer | None = None) -> IGCNet:
    """IGCV2-alpha (Table 8, left): non-linear IGCV2 blocks with ``g1 = g2 = 8`` branches
    (loose complementary condition), IGCV2* classifier without 3x3."""
    config = ImageNetConfig("igcv2", _check_alpha(alpha), groups=tuple(groups),
                            classifier_groups=tuple(classifier_groups))
    return _separable_net(
        config, IGCV2_ROWS, 64, in_chans, num_classes,
        lambda i, o, s, **kw: IGCV2Block(i, o, s, groups=config.groups, nonlinear=True, **kw),
        dict(norm_layer=norm_layer, act_layer=act_layer))


def _inverted_net(config: ImageNetConfig, num_classes: int, in_chans: int,
                  norm_layer: NormLayer | None, act_layer: ActLayer | None) -> IGCNet:
    if config.width_rule not in WIDTH_RULES:
        raise IGCError(f"unknown width rule {config.width_rule!r}; use one of {WIDTH_RULES}")
    alpha = config.alpha
    w = lambda c: scale_width(c, alpha, config.width_rule)  # noqa: E731
    layers = dict(norm_layer=norm_layer, act_layer=act_layer)
    width = w(32)
    stages: list[list[nn.Module]] = [[]]
    for t, c, n_v2, n_v3, s in INVERTED_ROWS:
        out = w(c)
        if s == 2:
            stages.append([])
        for i in range(n_v3 if config.family == "igcv3" else n_v2):
            stride = s if i == 0 else 1
            if config.family == "igcv3":
                block = IGCV3Block(width, out, stride, expansion=t, g1=2, g2=2,
                                   hidden=width * t, **layers)
            else:
                block = MobileNetV2Block(width, out, stride, expansion=t, hidden=width * t,
                                         expand=True if config.first_expand else None,
                                         **layers)
            stages[-1].append(block)
            width = out
    last = 1280 if config.width_rule == "torchvision" and alpha <= 1 else w(1280)
    groups = config.head_groups
    if groups < 1 or last % groups or width % groups:
        raise IGCError(f"head groups {groups} do not divide {width} -> {last}")
    final = conv_norm_act(width, last, 1, 1, "relu6", groups=groups, **layers)
    return IGCNet(conv_norm_act(in_chans, w(32), 3, 2, "relu6", **layers),
                  [nn.Sequential(*s) for s in stages], num_classes, final_conv=final,
                  config=config, norm_layer=norm_layer)


def mobilenet_v2(alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 width_rule: str = "paper", first_expand: bool = False, *,
                 norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> IGCNet:
    """MobileNetV2-alpha (Table 10, right). ``first_expand=True`` gives the ``t = 1`` block
    a 1x1 expansion convolution anyway (32 -> 32, BN, ReLU6: 1,088 parameters), the layout
    of pytorchcv's ``mobilenetv2_w1`` (:mod:`igc.models.pytorchcv`); the paper's block and
    the default have none."""
    if not isinstance(first_expand, bool):
        raise IGCError(f"first_expand must be True or False, got {first_expand!r}")
    config = ImageNetConfig("mobilenetv2", _check_alpha(alpha), width_rule,
                            first_expand=first_expand)
    return _inverted_net(config, num_classes, in_chans, norm_layer, act_layer)


def igcv3(alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
          width_rule: str = "paper", head_groups: int = 1, *,
          norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None) -> IGCNet:
    """IGCV3-alpha (Table 10, left): twice MobileNetV2's repeated blocks, each a group 1x1
    expansion (g1 = 2), shuffle, channel-wise 3x3, group 1x1 reduction (g2 = 2)."""
    config = ImageNetConfig("igcv3", _check_alpha(alpha), width_rule, head_groups=head_groups)
    return _inverted_net(config, num_classes, in_chans, norm_layer, act_layer)
