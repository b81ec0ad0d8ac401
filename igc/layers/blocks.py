"""The IGC block family and its baselines, each a :class:`FactorChain` with an optional
identity skip.

Every block keeps the :class:`~igc.sparsity.KernelProduct` it was built from in
``block.product`` (the composed kernel of its residual branch), so its connectivity,
parameters and condition can be read from the mathematics. Every block takes
``norm_layer`` (``num_channels -> module``, BatchNorm by default) and ``act_layer`` (``() ->
module``, replacing every ReLU/ReLU6 of the block when given), passed to its
:class:`FactorChain`.

==================  ====================================================================
block               factors (``->`` BN/activation placement)
==================  ====================================================================
XceptionBlock       channel-wise 3x3 -> BN, dense 1x1 -> BN -> ReLU (linear form;
                    ``nonlinear=True`` adds a ReLU after the 3x3: MobileNetV1)
IGCV1Block          group 3x3 (branches of 2) -> shuffle -> group 1x1 (2 branches) -> BN -> ReLU
                    -> shuffle (eq. 2 with ``P_2``; the official IGCV1 order: no BN between
                    the two convolutions)
IGCV2Block          channel-wise 3x3 -> BN, ``L-1`` group 1x1 -> BN -> shuffle, one ReLU at the
                    end before the last shuffle ``P_L`` (linear, CIFAR; eq. 4);
                    ``nonlinear=True``: paper Figure 5(b)
IGCV3Block          group 1x1 expand (g1) -> BN -> shuffle -> channel-wise 3x3 -> BN -> ReLU6 ->
                    group 1x1 reduce (g2) -> BN, skip when shapes allow
MobileNetV2Block    dense 1x1 expand -> BN -> ReLU6 -> channel-wise 3x3 -> BN -> ReLU6 ->
                    dense 1x1 -> BN, skip when shapes allow
DeepRootsBlock      group 3x3 -> BN -> ReLU -> dense 1x1 -> BN -> ReLU
==================  ====================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

from igc.errors import IGCError
from igc.layers.chain import ActLayer, FactorChain, NormLayer
from igc.sparsity import Factor, KernelProduct

SPATIAL = 9  # a 3x3 kernel's area


def _accepts_old_channel_names(init):
    """Let ``__init__`` also take the keywords ``in_ch`` / ``out_ch`` of earlier versions
    (now ``in_channels`` / ``out_channels``, as ``nn.Conv2d`` spells them)."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        for old, new in (("in_ch", "in_channels"), ("out_ch", "out_channels")):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"give {new} or {old}, not both")
                kwargs[new] = kwargs.pop(old)
        return init(self, *args, **kwargs)

    return wrapper


class IGCBlock(nn.Module):
    """``(N, C_in, H, W) -> (N, C_out, H/s, W/s)``: ``body(x)`` plus ``x`` when ``skip``."""

    #: Python-only properties TorchScript must not compile.
    __jit_unused_properties__ = ("product", "in_channels", "out_channels", "stride")

    def __init__(self, product: KernelProduct, stride: int = 1,
                 norms: Sequence[bool] | bool = True, acts: Sequence[str | None] | None = None,
                 skip: bool = False, norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> None:
        super().__init__()
        if skip and (stride != 1 or product.in_channels != product.out_channels):
            raise IGCError("an identity skip needs stride 1 and equal input and output widths")
        self.body = FactorChain(product, stride, norms, acts, norm_layer, act_layer)
        self.skip = skip

    @property
    def product(self) -> KernelProduct:
        return self.body.product

    @property
    def in_channels(self) -> int:
        return self.product.in_channels

    @property
    def out_channels(self) -> int:
        return self.product.out_channels

    @property
    def stride(self) -> int:
        return self.body.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + x if self.skip else y


def _skip(skip: bool | None, in_channels: int, out_channels: int, stride: int) -> bool:
    return (stride == 1 and in_channels == out_channels) if skip is None else skip


def pointwise_factors(in_channels: int, out_channels: int, groups: Sequence[int]) -> list[Factor]:
    """1x1 group convolutions with ``groups[l]`` branches; the width changes in the last."""
    return [
        Factor(in_channels, out_channels if i == len(groups) - 1 else in_channels, g, 1)
        for i, g in enumerate(groups)
    ]


def groups_from_branch_sizes(channels: int, branch_sizes: Sequence[int]) -> list[int]:
    """Branch counts ``C / K_l`` for 1x1 factors whose branches hold ``K_l`` inputs."""
    for k in branch_sizes:
        if k <= 0 or channels % k:
            raise IGCError(f"branch size {k} does not divide the width {channels}; "
                           f"use a divisor of {channels}")
    return [channels // k for k in branch_sizes]


class XceptionBlock(IGCBlock):
    """Depthwise-separable block (Xception / MobileNetV1): channel-wise 3x3, dense 1x1.

    ``final_act=False`` leaves out the last ReLU (the second block of a residual unit,
    whose ReLU follows the addition)."""

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 nonlinear: bool = False, *,
                 final_act: bool = True, norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> None:
        product = KernelProduct((Factor(in_channels, in_channels, in_channels, SPATIAL),
                                 Factor(in_channels, out_channels, 1)))
        super().__init__(product, stride, acts=["relu" if nonlinear else None, _final(final_act)],
                         norm_layer=norm_layer, act_layer=act_layer)


def _final(final_act: bool) -> str | None:
    return "relu" if final_act else None


class IGCV1Block(IGCBlock):
    """Interleaved group convolution (IGCV1, eq. 2): a primary group 3x3 whose branches
    produce ``primary_branch`` channels each, ``P_1``, a secondary group 1x1 with
    ``secondary_groups`` branches, ``P_2``, then BN and ReLU (the official code's order
    conv -> reorder -> conv -> reorder -> BN -> ReLU; BN and ReLU act per channel, so
    ``conv -> BN -> ReLU -> P_2`` here computes the same).

    ``P_2`` undoes the relabelling of ``P_1`` (with ShuffleNet's convention the two
    shuffles compose to the identity), so output channel ``i`` is the one that a residual
    unit adds to input channel ``i``. ``shuffle_last=False`` drops ``P_2`` (the zoo before
    this was fixed); ``final_act=False`` leaves out the ReLU (see :class:`XceptionBlock`).
    """

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 primary_branch: int = 2,
                 secondary_groups: int = 2, *, shuffle_last: bool = True,
                 final_act: bool = True, norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> None:
        if out_channels % primary_branch:
            raise IGCError(f"primary branch size {primary_branch} does not divide width "
                           f"{out_channels}")
        primary = Factor(in_channels, out_channels, out_channels // primary_branch, SPATIAL)
        product = KernelProduct((primary, Factor(out_channels, out_channels, secondary_groups)),
                                shuffle_last=shuffle_last)
        super().__init__(product, stride, norms=[False, True], acts=[None, _final(final_act)],
                         norm_layer=norm_layer, act_layer=act_layer)


class IGCV2Block(IGCBlock):
    """IGCV2 (eq. 4): channel-wise 3x3 then ``L-1`` group 1x1 convolutions, each followed by
    its permutation ``P_l``, the last one ``P_L`` included.

    Give the 1x1 factors as ``branch_sizes`` (``K_l``, inputs per branch, paper Table 1) or as
    ``groups`` (branch counts, paper Table 8). Linear form (CIFAR): BN after every factor, one
    ReLU at the end. ``nonlinear=True`` is Figure 5(b): 3x3 -> BN -> ReLU -> 1x1 -> BN ->
    shuffle -> ... -> 1x1 -> BN -> ReLU -> shuffle. ``spatial=False`` drops the 3x3 (the
    paper's starred blocks, e.g. the ImageNet classifier). ``spatial_branch`` is ``K_1``,
    the channels per branch of the 3x3 (1: channel-wise; 2: the group 3x3 of the paper's
    IGCV2-I, Table 5).

    ``P_L`` (``shuffle_last``, default on in both forms, as eq. 4 writes it): for a strict
    design the shuffles compose to the identity, so the output channels come back in the
    input's digit order and a residual unit adds each channel to the one it came from;
    ``shuffle_last=False`` is the zoo's linear block before this was fixed.
    ``final_act=False`` leaves out the last ReLU (see :class:`XceptionBlock`).
    """

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 branch_sizes: Sequence[int] | None = None, groups: Sequence[int] | None = None,
                 nonlinear: bool = False, spatial: bool = True,
                 spatial_branch: int = 1, *, shuffle_last: bool = True, final_act: bool = True,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None) -> None:
        if (branch_sizes is None) == (groups is None):
            raise IGCError("give the 1x1 factors as branch_sizes or as groups, not both")
        if groups is None:
            groups = groups_from_branch_sizes(in_channels, branch_sizes)
        factors = pointwise_factors(in_channels, out_channels, groups)
        if spatial:
            if spatial_branch < 1 or in_channels % spatial_branch:
                raise IGCError(f"3x3 branch size {spatial_branch} does not divide the width "
                               f"{in_channels}; use a divisor of {in_channels}")
            factors.insert(0, Factor(in_channels, in_channels, in_channels // spatial_branch,
                                     SPATIAL))
        acts: list[str | None] = [None] * len(factors)
        acts[-1] = _final(final_act)
        if nonlinear and spatial:
            acts[0] = "relu"
        product = KernelProduct(tuple(factors), shuffle_last=shuffle_last)
        super().__init__(product, stride, acts=acts, norm_layer=norm_layer, act_layer=act_layer)
        self.nonlinear = nonlinear


class IGCV3Block(IGCBlock):
    """IGCV3: group 1x1 expanding by ``expansion`` (``g1`` branches), shuffle, channel-wise
    3x3 (carries the stride) with ReLU6, group 1x1 reducing (``g2`` branches); identity skip
    when stride 1 and widths agree (IGCV3 official code: no activation on the 1x1s)."""

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: float = 6,
                 g1: int = 2, g2: int = 2, hidden: int | None = None,
                 skip: bool | None = None, *, norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> None:
        hidden = hidden or round(in_channels * expansion)
        factors = (Factor(in_channels, hidden, g1), Factor(hidden, hidden, hidden, SPATIAL),
                   Factor(hidden, out_channels, g2))
        super().__init__(KernelProduct(factors), stride, acts=[None, "relu6", None],
                         skip=_skip(skip, in_channels, out_channels, stride), norm_layer=norm_layer,
                         act_layer=act_layer)


class MobileNetV2Block(IGCBlock):
    """MobileNetV2 inverted residual: dense 1x1 expand (omitted when ``expansion == 1``;
    ``expand=True`` keeps it, as pytorchcv's ``mobilenetv2_w1``), channel-wise 3x3, dense
    1x1 projection, linear bottleneck, skip when shapes allow."""

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: float = 6,
                 hidden: int | None = None, skip: bool | None = None, *,
                 expand: bool | None = None, norm_layer: NormLayer | None = None,
                 act_layer: ActLayer | None = None) -> None:
        hidden = hidden or round(in_channels * expansion)
        factors = [Factor(hidden, hidden, hidden, SPATIAL), Factor(hidden, out_channels, 1)]
        acts: list[str | None] = ["relu6", None]
        if expand is None:
            expand = hidden != in_channels or expansion != 1
        if not expand and hidden != in_channels:
            raise IGCError(f"a block without its expansion needs hidden == in_channels "
                           f"({in_channels}), got {hidden}")
        if expand:
            factors.insert(0, Factor(in_channels, hidden, 1))
            acts.insert(0, "relu6")
        super().__init__(KernelProduct(tuple(factors)), stride, acts=acts,
                         skip=_skip(skip, in_channels, out_channels, stride), norm_layer=norm_layer,
                         act_layer=act_layer)


class DeepRootsBlock(IGCBlock):
    """Deep roots (Ioannou et al.): a group 3x3 with ``groups`` branches, then a dense 1x1."""

    @_accepts_old_channel_names
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 4, *,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None) -> None:
        product = KernelProduct((Factor(in_channels, out_channels, groups, SPATIAL),
                                 Factor(out_channels, out_channels, 1)))
        super().__init__(product, stride, acts=["relu", "relu"], norm_layer=norm_layer,
                         act_layer=act_layer)
