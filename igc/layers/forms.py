"""Training forms of a factor chain: the same mathematics, computed with fewer copies.

A :class:`~igc.layers.FactorChain` runs its factors as ``conv -> [BN] -> [act] ->
[shuffle]`` (the ``"grouped"`` form). Each channel shuffle ``P_l`` of eq. 4 is a copy of
the activation. Two exact rewrites remove it:

* **into the next factor's columns**: ``W_{l+1} P_l x = W'_{l+1} x`` with
  ``W'_{l+1} = W_{l+1} P_l``, valid whenever factor ``l + 1`` is a 1x1 convolution
  (nothing stands between the shuffle and it);
* **into this factor's rows**: ``P_l act(BN(W_l x)) = act(BN'(W'_l x))`` with
  ``W'_l = P_l W_l`` and ``BN'`` the same BatchNorm with its parameters and running
  statistics read (and written back) in the permuted order, valid for a 1x1 factor whose
  normalisation is a BatchNorm (per channel) and whose activation is elementwise; this is
  how a shuffle before a channel-wise 3x3 (IGCV3) or after the last factor (``P_L``)
  disappears.

Either way the absorbing 1x1 factor stops being block-diagonal in the channel order it
sees, so it runs as one dense 1x1 convolution whose weight is scattered, at every step,
from the factor's own grouped weight (the gradient flows back to it through the scatter):
the parameters, the state dict and the mathematics are those of the grouped form.

A dense product costs ``groups`` times the multiply-adds of the grouped one, but on a
CPU a dense 1x1 convolution runs about 4x faster per multiply-add than a grouped one
(SPEC section 4) and the copy disappears. Measured here (``benchmarks/train.py``,
training step of one IGCV2 block, batch 128, 2 threads): 4 branches (C = 32, 14x14)
0.69x the time of the grouped form with its shuffle; 8 branches (C = 64, 7x7) equal;
16 branches (C = 128, 4x4) 1.2x slower. The ``"auto"`` form therefore densifies a 1x1
factor only when it has at most :data:`DENSE_MAX_GROUPS` branches and a shuffle next to
it; ``"absorbed"`` densifies every 1x1 factor next to a shuffle (for tests and
comparisons). Shuffles that are not absorbed are copied, keeping the memory format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from igc.errors import IGCError
from igc.names import TRAINING_FORMS
from igc.sparsity import KernelProduct

#: Training forms of a chain (see the module docstring), listed in :mod:`igc.names`.
FORMS = TRAINING_FORMS
#: ``"auto"`` absorbs a shuffle into the next 1x1 factor up to this many branches...
DENSE_MAX_GROUPS = 8
#: ... and into the previous one (whose BatchNorm then runs in permuted order, which
#: costs a little more) up to this many.
ROWS_MAX_GROUPS = 4


def check_form(form: str) -> str:
    """``form`` if it names a training form, else IGCError."""
    if form not in FORMS:
        raise IGCError(f"unknown training form {form!r}; use one of {', '.join(FORMS)}")
    return form


@dataclass(frozen=True)
class Step:
    """How one factor runs in a planned chain.

    ``scatter`` (when the factor is dense): for every element of the grouped weight
    ``(out, in/g, 1, 1)``, flattened, its position in the dense ``(out, in)`` weight, with
    the absorbed input permutation (columns) and output permutation (rows) applied.
    ``norm_order`` (when rows were permuted): the channel order in which the factor's
    BatchNorm sees its input (``None``: the natural order). ``shuffle``: copy the shuffle
    after this factor.
    """

    scatter: torch.Tensor | None = None
    norm_order: torch.Tensor | None = None
    shuffle: bool = False


def _scatter_index(out_channels: int, in_channels: int, groups: int, in_perm: np.ndarray | None,
                   out_perm: np.ndarray | None) -> torch.Tensor:
    per_in = in_channels // groups
    rows = np.repeat(np.arange(out_channels), per_in)
    cols = (rows // (out_channels // groups)) * per_in + np.tile(np.arange(per_in), out_channels)
    if in_perm is not None:  # (W P)[o, p[j]] = W[o, j]
        cols = in_perm[cols]
    if out_perm is not None:  # (P W)[j] = W[p[j]]: row o goes to position p^-1[o]
        inverse = np.empty_like(out_perm)
        inverse[out_perm] = np.arange(len(out_perm))
        rows = inverse[rows]
    return torch.from_numpy(rows * in_channels + cols)


def _permutable_norm(module: nn.Sequential) -> bool:
    norm = module._modules.get("bn")
    return norm is None or isinstance(norm, nn.modules.batchnorm._BatchNorm)


def plan(product: KernelProduct, factors: nn.ModuleList, form: str,
         device: torch.device | str = "cpu") -> list[Step] | None:
    """The steps of ``form`` for a chain of ``product`` built as ``factors``, their index
    tensors on ``device``; ``None`` when the chain runs as it is (grouped form, or no
    shuffle to remove)."""
    check_form(form)
    count = product.layers
    perms = [product.permutation(i) for i in range(count)]
    if form == "grouped" or all(p is None for p in perms):
        return None
    specs = product.factors
    rows_ok = [_permutable_norm(m) for m in factors]

    def can_densify(i: int, limit: int) -> bool:
        spec = specs[i]
        return spec.kernel_area == 1 and (form == "absorbed" or spec.groups <= limit)

    in_perm: list[np.ndarray | None] = [None] * count
    out_perm: list[np.ndarray | None] = [None] * count
    shuffle = [False] * count
    for i, perm in enumerate(perms):
        if perm is None:
            continue
        if i + 1 < count and can_densify(i + 1, DENSE_MAX_GROUPS):
            in_perm[i + 1] = perm
        elif rows_ok[i] and can_densify(i, ROWS_MAX_GROUPS):
            out_perm[i] = perm
        else:
            shuffle[i] = True
    dense = [a is not None or b is not None for a, b in zip(in_perm, out_perm)]
    steps = []
    for i, spec in enumerate(specs):
        scatter = (_scatter_index(spec.out_channels, spec.in_channels, spec.groups,
                                  in_perm[i], out_perm[i]).to(device) if dense[i] else None)
        order = (None if out_perm[i] is None
                 else torch.from_numpy(out_perm[i].copy()).to(device))
        steps.append(Step(scatter, order, shuffle[i]))
    return steps


def dense_weight(weight: torch.Tensor, scatter: torch.Tensor, in_channels: int) -> torch.Tensor:
    """``(out, in, 1, 1)``: the grouped 1x1 weight ``(out, in/g, 1, 1)`` placed at
    ``scatter`` in a zero dense weight (differentiable in ``weight``)."""
    out_channels = weight.shape[0]
    flat = weight.new_zeros(out_channels * in_channels)
    flat = flat.scatter(0, scatter, weight.reshape(-1))
    return flat.view(out_channels, in_channels, 1, 1)


def batch_norm_in_order(norm: nn.modules.batchnorm._BatchNorm, x: torch.Tensor,
                        order: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to ``x`` whose channel ``j`` is ``norm``'s channel ``order[j]``.

    Exactly ``norm(x[:, inverse])[:, order]`` including the update of the running
    statistics (written back in ``norm``'s own order) and ``num_batches_tracked``.
    """
    weight = None if norm.weight is None else norm.weight[order]
    bias = None if norm.bias is None else norm.bias[order]
    training = norm.training or norm.running_mean is None
    factor = 0.0
    if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        factor = (1.0 / float(norm.num_batches_tracked) if norm.momentum is None
                  else norm.momentum)
    mean = None if norm.running_mean is None else norm.running_mean[order]
    var = None if norm.running_var is None else norm.running_var[order]
    y = F.batch_norm(x, mean, var, weight, bias, training, factor, norm.eps)
    if norm.training and mean is not None and var is not None:
        with torch.no_grad():
            norm.running_mean[order] = mean
            norm.running_var[order] = var
    return y


def run_planned(factors: nn.ModuleList, steps: list[Step], x: torch.Tensor) -> torch.Tensor:
    """Run the chain's ``factors`` as ``steps`` say (see :func:`plan`)."""
    for module, step in zip(factors, steps):
        conv = module.conv
        if step.scatter is None:
            x = conv(x)
        else:
            x = F.conv2d(x, dense_weight(conv.weight, step.scatter, conv.in_channels),
                         None if conv.bias is None else _bias(conv.bias, step.norm_order))
        norm = module._modules.get("bn")
        if norm is not None:
            x = norm(x) if step.norm_order is None else batch_norm_in_order(norm, x,
                                                                           step.norm_order)
        act = module._modules.get("act")
        if act is not None:
            x = act(x)
        if step.shuffle:
            x = module.shuffle(x)
    return x


def _bias(bias: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    return bias if order is None else bias[order]

