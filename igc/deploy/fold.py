"""BatchNorm folding: an eval-mode BatchNorm after a convolution (or a linear layer) is an
affine map per output channel, so it can be written into that layer's weight and bias.

For a convolution ``y = W * x + b`` followed by ``BN(y) = s (y - mean) + beta`` with
``s = gamma / sqrt(var + eps)``, the folded layer has ``W' = s W`` (row ``o`` scaled by
``s_o``) and ``b' = s (b - mean) + beta``. A grouped or depthwise convolution's weight
``(out, in/groups, k, k)`` is indexed by output channel first too, so the same rule
folds them all.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn(y) == scale * y + shift`` per channel in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    inv = torch.rsqrt(bn.running_var.detach().double() + bn.eps)
    scale = inv if bn.weight is None else bn.weight.detach().double() * inv
    shift = -bn.running_mean.detach().double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def foldable(bn: nn.Module) -> bool:
    """True for a BatchNorm whose eval-mode form is a fixed affine map."""
    return isinstance(bn, _NORMS) and bn.running_mean is not None


def fold_bn(layer: nn.Conv2d | nn.Linear, bn: nn.modules.batchnorm._BatchNorm
            ) -> nn.Conv2d | nn.Linear:
    """A copy of ``layer`` (any groups) with ``bn`` folded in; the copy always has a bias."""
    scale, shift = bn_affine(bn)
    folded = copy.deepcopy(layer)
    weight = layer.weight.detach().double()
    bias = (layer.bias.detach().double() if layer.bias is not None
            else torch.zeros(weight.shape[0], dtype=torch.float64))
    shape = (-1,) + (1,) * (weight.dim() - 1)
    dtype = layer.weight.dtype
    folded.weight = nn.Parameter((weight * scale.view(shape)).to(dtype), requires_grad=False)
    folded.bias = nn.Parameter((bias * scale + shift).to(dtype), requires_grad=False)
    return folded


def _pairs_fold(seq: nn.Sequential) -> int:
    names = list(seq._modules)
    folded = 0
    for a, b in itertools.pairwise(names):
        layer, bn = seq._modules[a], seq._modules[b]
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and foldable(bn) \
                and bn.num_features == layer.weight.shape[0]:
            seq._modules[a] = fold_bn(layer, bn)
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


def fold_batchnorms(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution or linear layer inside an
    ``nn.Sequential`` (at any depth); the BatchNorm becomes ``nn.Identity``.

    Returns the folded model (a deep copy in eval mode unless ``inplace``). Outputs equal
    the eval-mode model's up to float rounding. BatchNorms elsewhere are left as they are.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            _pairs_fold(module)
    return model


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, _NORMS) for m in model.modules())
