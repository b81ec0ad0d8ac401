"""The interleaved group convolution chain: a :class:`~igc.sparsity.KernelProduct` as a
module (IGCV2 paper, eq. 4).

Each factor ``W_l`` becomes ``Conv2d(groups=g_l)`` followed by an optional BatchNorm and
an optional activation, and ``P_l`` becomes a :class:`ChannelShuffle`. The module keeps
its product, so the mathematics can be checked against the weights at any time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Optional

import torch
from torch import nn

from igc.errors import IGCError
from igc.layers.forms import Step, check_form, plan, run_planned
from igc.layers.shuffle import ChannelShuffle
from igc.sparsity import KernelProduct

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}

#: ``norm_layer(num_channels) -> module``, e.g. ``nn.BatchNorm2d`` or
#: ``lambda c: nn.GroupNorm(8, c)``.
NormLayer = Callable[[int], nn.Module]
#: ``act_layer() -> module``, e.g. ``nn.SiLU``; replaces every activation of a block.
ActLayer = Callable[[], nn.Module]
#: A chain's cached training-form plan (see :meth:`FactorChain._forward_planned`).
_Plan = tuple[tuple[str, torch.device], list[Step] | None] | None


def _fx_tracing() -> bool:
    """Whether ``torch.fx`` (symbolic tracing, or torch.export through it) is tracing: the
    flag ``torch.fx._symbolic_trace.is_fx_tracing`` returns, read without the warning that
    function logs on every call since torch 2.13."""
    return bool(getattr(torch.fx._symbolic_trace, "_is_fx_tracing_flag", False))


def make_activation(name: str | None, act_layer: ActLayer | None = None) -> nn.Module | None:
    """The activation named ``"relu"``, ``"relu6"`` (in place) or ``None``; with
    ``act_layer``, ``act_layer()`` wherever the block has an activation."""
    if name is None:
        return None
    if name not in ACTIVATIONS:
        raise IGCError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    if act_layer is not None:
        return act_layer()
    return ACTIVATIONS[name](inplace=True)


def kernel_size(area: int) -> int:
    side = math.isqrt(area)
    if side * side != area:
        raise IGCError(f"kernel area {area} is not a square (1, 9, 25, ...)")
    return side


class FactorChain(nn.Module):
    """``(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)``: the factors of ``product`` in
    order, each ``conv -> [BN] -> [activation] -> [shuffle]``.

    In training mode the chain runs in its training ``form`` (:mod:`igc.layers.forms`:
    ``"auto"``, ``"grouped"`` or ``"absorbed"``), which computes the same function with
    the same parameters but absorbs shuffles into adjacent 1x1 factors where that is
    cheaper; in evaluation mode it always runs the factors as built.

    ``norms[l]`` and ``acts[l]`` say whether factor ``l`` has a normalisation layer and
    which activation follows it. ``norm_layer`` builds the normalisation layers
    (``nn.BatchNorm2d`` by default) and ``act_layer``, when given, replaces every
    activation (see :func:`make_activation`). The stride is carried by the (first)
    spatial factor.

    The chain scripts (``torch.jit.script``) and traces (``torch.fx``) in the form it was
    built.
    """

    #: Python-only properties TorchScript must not compile.
    __jit_unused_properties__ = ("branch_sizes",)

    def __init__(
        self,
        product: KernelProduct,
        stride: int = 1,
        norms: Sequence[bool] | bool = True,
        acts: Sequence[str | None] | None = None,
        norm_layer: NormLayer | None = None,
        act_layer: ActLayer | None = None,
        form: str = "auto",
    ) -> None:
        super().__init__()
        self.form = check_form(form)
        #: ``((form, device), steps)`` of the last training-form plan (Python only).
        self._plan: _Plan = None
        count = product.layers
        norms = [norms] * count if isinstance(norms, bool) else list(norms)
        acts = [None] * count if acts is None else list(acts)
        if len(norms) != count or len(acts) != count:
            raise IGCError(f"give one norm and one activation per factor ({count} factors)")
        spatial = [i for i, f in enumerate(product.factors) if f.is_spatial]
        if stride != 1 and not spatial:
            raise IGCError("a stride needs a spatial factor to carry it")
        self.product = product
        self.stride = stride
        self.factors = nn.ModuleList()
        for index, factor in enumerate(product.factors):
            k = kernel_size(factor.kernel_area)
            layers: dict[str, nn.Module] = {
                "conv": nn.Conv2d(
                    factor.in_channels, factor.out_channels, k,
                    stride=stride if spatial and index == spatial[0] else 1,
                    padding=k // 2, groups=factor.groups, bias=False,
                )
            }
            if norms[index]:
                layers["bn"] = (norm_layer or nn.BatchNorm2d)(factor.out_channels)
            act = make_activation(acts[index], act_layer)
            if act is not None:
                layers["act"] = act
            if product.permutation(index) is not None:
                layers["shuffle"] = ChannelShuffle(factor.groups)
            self.factors.append(nn.Sequential(OrderedDict(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.form != "grouped" and not torch.jit.is_scripting():
            y = self._forward_planned(x)
            if y is not None:
                return y
        for factor in self.factors:
            x = factor(x)
        return x

    @torch.jit.unused
    def _forward_planned(self, x: torch.Tensor) -> Optional[torch.Tensor]:  # noqa: UP045
        """The training form's output, or ``None`` where the chain runs as built (nothing to
        absorb, or while ``torch.fx`` traces it: the traced graph computes the grouped form,
        the same function of the same parameters; TorchScript always runs that form)."""
        if _fx_tracing():
            return None
        key = (self.form, x.device)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, plan(self.product, self.factors, self.form, x.device))
        steps = self._plan[1]
        return None if steps is None else run_planned(self.factors, steps, x)

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        return self.product.branch_sizes


def set_training_form(module: nn.Module, form: str) -> nn.Module:
    """Use training ``form`` (:mod:`igc.layers.forms`) for every factor chain inside
    ``module`` (in training mode); returns ``module``."""
    check_form(form)
    for child in module.modules():
        if isinstance(child, FactorChain):
            child.form = form
    return module
