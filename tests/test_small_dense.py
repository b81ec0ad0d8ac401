"""The "small-dense" chain mode (igc.deploy.chain.small_dense): dense where the dense 1x1
is small or barely larger than the structured product, grouped elsewhere; exact outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_bn

from igc.deploy import optimize
from igc.deploy.chain import Context, build_steps, lower
from igc.deploy.chain.small_dense import SMALL_DENSE_MACS
from igc.layers.chain import FactorChain
from igc.models.registry import create_model
from igc.sparsity import KernelProduct


def _forms(channels: int, sizes: tuple[int, ...]) -> list[tuple[str, int, int]]:
    product = KernelProduct.from_branch_sizes(channels, list(sizes), shuffle_last=True)
    chain = FactorChain(product, acts=["relu"] + [None] * (len(sizes) - 1)).eval()
    _, forms = build_steps(lower(chain), "small-dense", Context())
    return [(f.form, f.dense_macs, f.structured_macs) for f in forms]


@pytest.mark.parametrize("channels, sizes, form", [
    (64, (1, 8, 8), "dense"),        # 64 x 64 = 4,096 multiply-adds per pixel: small
    (256, (1, 16, 16), "dense"),     # 65,536: the limit itself
    (1024, (1, 32, 32), "grouped"),  # 1,048,576 dense, 16x the structured
    (512, (1, 256), "dense"),        # 262,144 dense but 2x the structured (IGCV3's 1x1s)
    (768, (1, 256), "grouped"),      # 589,824 dense, 3x the structured
])
def test_the_rule_by_size_and_ratio(channels, sizes, form):
    rows = _forms(channels, sizes)
    assert [f for f, _, _ in rows] == [form]
    (_, dense, structured), = rows
    assert dense == channels * channels  # the composed product is one C x C matrix
    assert (dense <= SMALL_DENSE_MACS or dense <= 2 * structured) == (form == "dense")


@pytest.mark.parametrize("name, size", [("igcv2_fmnist", 28), ("igcv3_070", 64)])
def test_small_dense_keeps_outputs(name, size):
    model = randomize_bn(create_model(name)).eval()
    fast = optimize(model, "small-dense")
    x = torch.randn(3, model.pretrained_cfg["input_size"][0], size, size)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max() < 1e-4
