"""The one network shape of the zoo, with timm's model interface.

Every network is an :class:`IGCNet`::

    stem -> stages[0] -> ... -> stages[S-1] -> [final_conv]      forward_features
         -> global_pool -> classifier                             forward_head

* ``stem``: a 3x3 convolution -> norm -> activation (``stem.0`` is the first convolution).
* ``stages``: one ``nn.Sequential`` of blocks (or residual units) per output resolution;
  ``feature_info[s]`` gives the channels and the reduction (input size / map size) at the
  end of stage ``s`` in timm's format (``num_chs``, ``reduction``, ``module``).
* ``final_conv``: the inverted-residual networks' 1x1 convolution 320 -> 1280 (with norm
  and activation), part of the features as in timm's MobileNetV2; ``None`` elsewhere.
* ``global_pool`` averages over space and flattens to ``(N, num_features)`` (timm's
  ``global_pool="avg"``; ``"max"`` takes the maximum; ``""`` keeps the unpooled
  ``(N, num_features, h, w)`` map, for a network without classifier).
* ``classifier``: a linear layer, the IGCV2 ImageNet network's group-convolution classifier
  (:class:`GroupClassifier`), or ``nn.Identity`` after ``reset_classifier(0)``. Its
  weight is ``classifier.weight`` in every case (timm's ``pretrained_cfg["classifier"]``).

The networks script (``torch.jit.script``) and trace (``torch.fx.symbolic_trace``) as
built; a traced or scripted network trains in the chains' grouped form
(:mod:`igc.layers.forms`).

Initialisation (:func:`init_weights`, applied when a network is built and to a classifier
that :meth:`IGCNet.reset_classifier` makes): convolutions Kaiming/He normal with
``mode="fan_out"`` for ReLU (torchvision's ResNet and MobileNet rule), norm layers weight 1
and bias 0, convolution biases 0; the classifier (linear or group convolutions) normal with
std 0.01 and bias 0 (torchvision's MobileNetV2 rule for its linear classifier).
"""

# No ``from __future__ import annotations`` here: torch.fx writes the root module's
# forward annotations into the code it generates, which TorchScript must then read.
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from igc.errors import IGCError
from igc.layers import IGCBlock, make_activation
from igc.layers.chain import ActLayer, NormLayer
from igc.sparsity import Factor, KernelProduct

__all__ = [
    "CLASSIFIER_STD", "POOL_TYPES", "FeatureInfo", "GroupClassifier", "IGCFeatures", "IGCNet",
    "conv_norm_act", "init_weights", "make_classifier", "make_pool", "resolve_out_indices",
]

#: Standard deviation of the classifier's initial weights.
CLASSIFIER_STD = 0.01

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
#: timm's ``global_pool`` values a network takes: average over space (the papers'),
#: maximum, and ``""`` (none: the unpooled feature map).
POOL_TYPES = ("avg", "max", "")


def conv_norm_act(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                  act: str | None = "relu", norm_layer: NormLayer | None = None,
                  act_layer: ActLayer | None = None, groups: int = 1) -> nn.Sequential:
    """``(N, in, H, W) -> (N, out, H/stride, W/stride)``: convolution (no bias) -> norm ->
    activation (``act`` names it; ``act_layer`` replaces it, see
    :func:`igc.layers.make_activation`). Keys ``0`` (conv), ``1`` (norm)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2,
                  groups=groups, bias=False),
        (norm_layer or nn.BatchNorm2d)(out_channels)]
    activation = make_activation(act, act_layer)
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


class GroupClassifier(nn.Conv2d):
    """``(N, C) -> (N, classes)``: the IGCV2* classifier of Table 8's last row: group 1x1
    convolutions with ``groups[l]`` branches, a channel shuffle and a norm between them, a
    bias at the end, no 3x3. Falls back to dense factors when the branch counts do not
    divide both widths (e.g. 10 classes).

    The module is the last factor, a group 1x1 convolution with ``groups[-1]`` branches and
    a bias (so the state dict holds ``classifier.weight`` as timm expects; ``bias`` is
    listed first, the parameter order of earlier versions, so an optimizer state still
    fits); the factors before it, when there are several, are ``pre``: an
    :class:`~igc.layers.IGCBlock` of group 1x1 convolutions, each with its norm and shuffle
    (``None`` for the zoo's one-factor classifier).
    """

    def __init__(self, in_channels: int, num_classes: int, groups: tuple[int, ...],
                 norm_layer: NormLayer | None = None) -> None:
        if any(in_channels % g or num_classes % g for g in groups):
            groups = tuple(1 for _ in groups)
        super().__init__(in_channels, num_classes, 1, groups=groups[-1], bias=True)
        self._parameters = {k: self._parameters[k] for k in ("bias", "weight")}
        self.pre = None
        if len(groups) > 1:
            product = KernelProduct(tuple(Factor(in_channels, in_channels, g)
                                          for g in groups[:-1]), shuffle_last=True)
            self.pre = IGCBlock(product, norms=True, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, None, None]
        if self.pre is not None:
            x = self.pre(x)
        return self._conv_forward(x, self.weight, self.bias).flatten(1)


def make_classifier(in_features: int, num_classes: int, groups: tuple[int, ...] | None = None,
                    norm_layer: NormLayer | None = None) -> nn.Module:
    """``nn.Linear`` (``groups=None``), a :class:`GroupClassifier`, or ``nn.Identity`` for
    ``num_classes == 0`` (timm's headless model), initialised (std 0.01, bias 0)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise IGCError(f"num_classes must be a non-negative integer (0: no classifier), "
                       f"got {num_classes!r}")
    if num_classes == 0:
        return nn.Identity()
    if groups is None:
        classifier: nn.Module = nn.Linear(in_features, num_classes)
    else:
        classifier = GroupClassifier(in_features, num_classes, groups, norm_layer)
    init_weights(classifier, classifier=True)
    return classifier


@torch.no_grad()
def init_weights(module: nn.Module, classifier: bool = False) -> nn.Module:
    """Initialise every layer of ``module`` in place (see the module docstring); with
    ``classifier``, convolutions and linear layers get the classifier's N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if classifier or isinstance(m, (nn.Linear, GroupClassifier)):
                nn.init.normal_(m.weight, 0.0, CLASSIFIER_STD)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class FeatureInfo(list):
    """timm's feature information (``timm.models.FeatureInfo``): a list of
    ``dict(num_chs=, reduction=, module=)``, one per stage of the network, and
    ``out_indices``, the stages a feature extractor returns (every stage by default).

    timm's accessors ``get(key, idx)``, ``get_dicts(keys, idx)``, ``channels(idx)``,
    ``reduction(idx)`` and ``module_name(idx)`` answer for the stages of ``out_indices``
    when ``idx`` is ``None``, else for stage ``idx`` (an int) or stages ``idx`` (a list);
    indexing and ``len`` see every stage, as timm's."""

    def __init__(self, info: Sequence[dict[str, Any]] = (),
                 out_indices: Sequence[int] | None = None) -> None:
        super().__init__(info)
        self._out_indices = None if out_indices is None else tuple(out_indices)

    @property
    def out_indices(self) -> tuple[int, ...]:
        return tuple(range(len(self))) if self._out_indices is None else self._out_indices

    def from_other(self, out_indices: Sequence[int]) -> "FeatureInfo":
        """A copy of this information for the stages ``out_indices``."""
        return FeatureInfo([dict(f) for f in self], out_indices)

    def _stages(self, idx: int | Sequence[int] | None) -> list[int] | int:
        if idx is None:
            return list(self.out_indices)
        return idx if isinstance(idx, int) else list(idx)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        stages = self._stages(idx)
        return [self[i][key] for i in stages] if isinstance(stages, list) else self[stages][key]

    def get_dicts(self, keys: Sequence[str] | None = None,
                  idx: int | Sequence[int] | None = None) -> Any:
        def pick(i: int) -> dict[str, Any]:
            return self[i] if keys is None else {k: self[i][k] for k in keys}

        stages = self._stages(idx)
        return [pick(i) for i in stages] if isinstance(stages, list) else pick(stages)

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)


def _stage_info(stem: nn.Module, stages: Sequence[nn.Module]) -> FeatureInfo:
    """Channels and reduction at the end of every stage, read from the blocks' products."""
    conv = next(m for m in stem.modules() if isinstance(m, nn.Conv2d))
    reduction, channels = conv.stride[0], conv.out_channels
    info = FeatureInfo()
    for s, stage in enumerate(stages):
        for block in (m for m in stage.modules() if isinstance(m, IGCBlock)):
            reduction *= block.stride
            channels = block.out_channels
        info.append(dict(num_chs=channels, reduction=reduction, module=f"stages.{s}"))
    return info


def resolve_out_indices(out_indices: Sequence[int] | None, stages: int) -> tuple[int, ...]:
    """Stage indices (negative ones count from the end) as sorted non-negative ones; every
    stage when ``None``. IGCError for an empty, repeated or out-of-range selection."""
    if out_indices is None:
        return tuple(range(stages))
    try:
        chosen = [int(i) for i in out_indices if not isinstance(i, bool) and i == int(i)]
    except (TypeError, ValueError):
        chosen = []
    if not chosen or len(chosen) != len(list(out_indices)):
        raise IGCError(f"out_indices must be a non-empty list of stage numbers, got "
                       f"{out_indices!r}; use 0..{stages - 1} (or -1 for the last)")
    bad = [i for i in chosen if not -stages <= i < stages]
    resolved = sorted({i % stages for i in chosen})
    if bad or len(resolved) != len(chosen):
        raise IGCError(f"out_indices {tuple(out_indices)} are out of range or repeated for "
                       f"{stages} stages; use distinct numbers in 0..{stages - 1} "
                       f"(or -{stages}..-1)")
    return tuple(resolved)


class TimmCfg:
    """``pretrained_cfg`` (timm's model metadata, filled in by
    :func:`igc.models.registry.create_model`) and its older name ``default_cfg``, both
    left out of TorchScript."""

    __jit_unused_properties__ = ("default_cfg",)
    __jit_ignored_attributes__ = ("pretrained_cfg",)
    pretrained_cfg: dict[str, Any]

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name of :attr:`pretrained_cfg`."""
        return self.pretrained_cfg


class IGCNet(TimmCfg, nn.Module):
    """``(N, in_chans, H, W) -> (N, num_classes)``: the shape shared by every network of the
    zoo (see the module docstring), with timm's interface: :meth:`forward_features`,
    :meth:`forward_head`, :meth:`get_classifier`, :meth:`reset_classifier`,
    :attr:`num_features`, :attr:`feature_info`, :attr:`pretrained_cfg`.

    ``classifier_groups`` (``None``: linear) says which classifier
    :meth:`reset_classifier` builds; ``config`` is the frozen description the builder was
    given (:class:`~igc.models.cifar.CifarConfig`, :class:`~igc.models.imagenet.
    ImageNetConfig`). The network is initialised by :func:`init_weights`.
    """

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], num_classes: int, *,
                 final_conv: nn.Module | None = None,
                 classifier_groups: tuple[int, ...] | None = None,
                 config: object | None = None,
                 norm_layer: NormLayer | None = None) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.final_conv = final_conv
        self.feature_info: FeatureInfo = _stage_info(stem, stages)
        width = self.feature_info[-1]["num_chs"]
        if final_conv is not None:
            width = next(m for m in reversed(list(final_conv.modules()))
                         if isinstance(m, nn.Conv2d)).out_channels
        self.num_features: int = width
        #: Width of what ``forward_head(x, pre_logits=True)`` returns (timm's name).
        self.head_hidden_size: int = width
        self.pool_type = "avg"
        self.global_pool = make_pool(self.pool_type)
        self.classifier_groups = classifier_groups
        self.norm_layer = norm_layer
        self.config = config
        self.num_classes: int = num_classes
        self.classifier = make_classifier(width, num_classes, classifier_groups, norm_layer)
        self.pretrained_cfg = {}
        init_weights(self)
        init_weights(self.classifier, classifier=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_chans, H, W) -> (N, num_features, H/r, W/r)``, ``r`` the last reduction."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x if self.final_conv is None else self.final_conv(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(N, num_features, h, w) -> (N, num_classes)``, or the pooled
        ``(N, num_features)`` with ``pre_logits``."""
        x = self.global_pool(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new, initialised classifier of the same kind for ``num_classes`` (``0``:
        ``nn.Identity``, the network then returns the pooled features), and the pooling
        ``global_pool`` names (:data:`POOL_TYPES`; ``None`` keeps it; ``""`` with
        ``num_classes=0``: the unpooled feature maps), as timm's. IGCError for anything
        else, with the network unchanged."""
        pool_type = self.pool_type if global_pool is None else global_pool
        classifier = make_classifier(self.num_features, num_classes, self.classifier_groups,
                                     self.norm_layer)
        pool = make_pool(pool_type, num_classes)  # checks the pair
        if global_pool is None:
            pool = self.global_pool
        p = next(self.stem.parameters())
        self.classifier = classifier.to(device=p.device, dtype=p.dtype)
        self.global_pool, self.pool_type = pool, pool_type
        self.num_classes = num_classes
        if self.pretrained_cfg:
            self.pretrained_cfg["num_classes"] = num_classes


    def set_global_pool(self, global_pool: str) -> None:
        """Pool as ``global_pool`` names (:data:`POOL_TYPES`), keeping the classifier."""
        self.global_pool = make_pool(global_pool, self.num_classes)
        self.pool_type = global_pool


def make_pool(pool_type: str, num_classes: int = 0) -> nn.Module:
    """``(N, C, h, w) -> (N, C)`` for ``"avg"`` and ``"max"``; ``nn.Identity`` for ``""``
    (unpooled), which only a network without classifier (``num_classes == 0``) takes."""
    if pool_type not in POOL_TYPES:
        raise IGCError(f"unknown global_pool {pool_type!r}; use 'avg', 'max' or '' (none)")
    if pool_type == "":
        if num_classes:
            raise IGCError(f"global_pool='' gives unpooled feature maps, which a classifier "
                           f"cannot take; use num_classes=0 with it (got {num_classes})")
        return nn.Identity()
    pool = nn.AdaptiveAvgPool2d(1) if pool_type == "avg" else nn.AdaptiveMaxPool2d(1)
    return nn.Sequential(pool, nn.Flatten(1))


class IGCFeatures(TimmCfg, nn.Module):
    """``(N, in_chans, H, W) -> [feature map of stage i for i in out_indices]``: the
    feature extractor of ``create_model(..., features_only=True)`` (timm's
    ``FeatureListNet``). It shares ``net``'s stem and stages up to the last one chosen, so
    its state-dict keys are a subset of the network's. ``feature_info`` describes every
    stage of the network, with ``out_indices`` the ones returned (timm's
    ``FeatureListNet``)."""

    def __init__(self, net: IGCNet, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.out_indices = resolve_out_indices(out_indices, len(net.stages))
        self.stem = net.stem
        self.stages = nn.ModuleList(list(net.stages)[: self.out_indices[-1] + 1])
        self.feature_info = FeatureInfo([dict(f) for f in net.feature_info], self.out_indices)
        self.pretrained_cfg = dict(net.pretrained_cfg)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                out.append(x)
        return out

