"""BatchNorm folding precision: float32 folding (torch.nn.utils.fusion) of deep chains is as
close to a float64 reference as the trained float32 chain itself, so no float64 path.

Measured when this was decided (2 x 4 x 4 x 4 x 4 and 2^8 chains of width 256, BN
variances down to 1e-3, relative to the largest output): the trained chain in float32
1.8e-7 to 2.7e-7; lowered in float64 then run in float32 0.7e-7 to 4.8e-7; lowered in
float32 1.5e-7 to 4.2e-7.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from igc.deploy import fold_batchnorms, fold_bn
from igc.deploy.chain import FORMS, Context, build_steps, lower
from igc.layers.chain import FactorChain
from igc.sparsity import KernelProduct


def _randomize(module: nn.Module, var_low: float, seed: int = 0) -> nn.Module:
    """Running statistics with variances down to ``var_low`` (BN scales up to ~30x)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g))
            m.running_var.copy_(torch.rand(c, generator=g) * (1 - var_low) + var_low)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.3)
    return module.eval()


@pytest.mark.parametrize("sizes", [(1, 4, 4, 4, 4), (1, 2, 2, 2, 2, 2, 2, 2, 2)])
@pytest.mark.parametrize("form", FORMS)
def test_float32_folding_is_as_exact_as_the_trained_chain(sizes, form):
    torch.manual_seed(0)
    acts = [None] * (len(sizes) - 1) + ["relu"]
    chain = _randomize(FactorChain(KernelProduct.from_branch_sizes(256, sizes), acts=acts),
                       var_low=1e-3)
    x = torch.randn(2, 256, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = copy.deepcopy(chain).double()(x.double())
        trained = chain(x).double()
    scale = float(reference.abs().max())

    def error(dtype: torch.dtype) -> float:
        steps, _ = build_steps(lower(chain, dtype), form, Context())
        with torch.inference_mode():
            return float((steps(x).double() - reference).abs().max()) / scale

    own = float((trained - reference).abs().max()) / scale
    f32, f64 = error(torch.float32), error(torch.float64)
    assert f32 < 4 * own + 1e-7, (f32, f64, own)  # same magnitude as the model's own rounding
    assert f32 < 1e-6 and f64 < 1e-6


def test_fold_bn_matches_batchnorm_after_the_layer():
    torch.manual_seed(0)
    for groups in (1, 4, 16):
        conv = nn.Conv2d(16, 32 if groups != 16 else 16, 3, padding=1, groups=groups,
                         bias=groups == 4)
        bn = _randomize(nn.BatchNorm2d(conv.out_channels), 0.5)
        x = torch.randn(2, 16, 5, 5)
        folded = fold_bn(conv, bn)
        assert folded.bias is not None and not folded.weight.requires_grad
        with torch.no_grad():
            assert (folded(x) - bn(conv(x))).abs().max() < 1e-5
    plain = _randomize(nn.BatchNorm2d(8, affine=False), 0.5)  # no gamma / beta
    conv = nn.Conv2d(4, 8, 1)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        assert (fold_bn(conv, plain)(x) - plain(conv(x))).abs().max() < 1e-5
    with pytest.raises(ValueError, match="running statistics"):
        fold_bn(conv, nn.BatchNorm2d(8, track_running_stats=False))


def test_fold_batchnorms_in_sequentials_leaves_the_original():
    lin, bn1 = nn.Linear(8, 6), _randomize(nn.BatchNorm1d(6), 0.5)
    seq = nn.Sequential(lin, bn1)
    folded = fold_batchnorms(seq)
    assert isinstance(folded[1], nn.Identity) and isinstance(seq[1], nn.BatchNorm1d)
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert (folded(x) - seq.eval()(x)).abs().max() < 1e-5
