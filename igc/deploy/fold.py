"""BatchNorm folding: an eval-mode BatchNorm after a convolution (or a linear layer) is an
affine map per output channel, so it can be written into that layer's weight and bias.

For a convolution ``y = W * x + b`` followed by ``BN(y) = s (y - mean) + beta`` with
``s = gamma / sqrt(var + eps)``, the folded layer has ``W' = s W`` (row ``o`` scaled by
``s_o``) and ``b' = s (b - mean) + beta``. A grouped or depthwise convolution's weight
``(out, in/groups, k, k)`` is indexed by output channel first too, so the same rule
folds them all. The arithmetic is PyTorch's (``torch.nn.utils.fusion``), in the layer's
dtype.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def foldable(bn: nn.Module) -> bool:
    """True for a BatchNorm whose eval-mode form is a fixed affine map."""
    return isinstance(bn, _NORMS) and bn.running_mean is not None \
        and bn.running_var is not None


def fold_bn(layer: nn.Conv2d | nn.Linear, bn: nn.modules.batchnorm._BatchNorm
            ) -> nn.Conv2d | nn.Linear:
    """A copy of ``layer`` (any groups) with ``bn`` folded in; the copy always has a bias
    and its parameters need no gradient."""
    if not foldable(bn):
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    folded = copy.deepcopy(layer)
    ones = torch.ones_like(bn.running_mean)
    gamma = bn.weight.detach() if bn.weight is not None else ones
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(ones)
    bias = None if layer.bias is None else layer.bias.detach()
    if isinstance(layer, nn.Linear):
        weight, bias = fuse_linear_bn_weights(layer.weight.detach(), bias, bn.running_mean,
                                              bn.running_var, bn.eps, gamma, beta)
    else:
        weight, bias = fuse_conv_bn_weights(layer.weight.detach(), bias, bn.running_mean,
                                            bn.running_var, bn.eps, gamma, beta)
    folded.weight = nn.Parameter(weight.detach(), requires_grad=False)
    folded.bias = nn.Parameter(bias.detach(), requires_grad=False)
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
