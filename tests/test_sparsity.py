"""The mathematics of structured-sparse products, checked against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.errors import IGCError
from igc.sparsity import (
    DENSE,
    RELAXED,
    SPARSE,
    STRICT,
    Connectivity,
    Factor,
    KernelProduct,
    balanced_branch_sizes,
    best_layers,
    best_layers_real,
    design,
    divisors,
    factorizations,
    nonzero_ratio,
    params_bound,
    params_formula,
    shuffle_permutation,
)


def brute_force_counts(product: KernelProduct) -> np.ndarray:
    """Path counts as an explicit product of 0/1 block masks and permutation matrices."""
    total = np.eye(product.in_channels)  # float64 products of 0/1 matrices are exact
    for index, factor in enumerate(product.factors):
        out_branch = np.arange(factor.out_channels)[:, None] // factor.branch_out
        in_branch = np.arange(factor.in_channels)[None, :] // factor.branch_in
        mask = (out_branch == in_branch).astype(float)
        total = mask @ total
        last = index == product.layers - 1
        if factor.groups not in (1, factor.out_channels) and (not last or product.shuffle_last):
            c, g = factor.out_channels, factor.groups
            new = np.arange(c)  # new channel j*g + i holds old channel i*(c/g) + j
            perm = np.zeros((c, c))
            perm[new, (new % g) * (c // g) + new // g] = 1
            total = perm @ total
    return total.astype(np.int64)


exact_sizes = (
    st.lists(st.integers(2, 6), min_size=1, max_size=4)
    .filter(lambda ks: math.prod(ks) <= 512)
    .flatmap(st.permutations)
)


@settings(max_examples=150, deadline=None)
@given(sizes=exact_sizes, channelwise=st.booleans(), area=st.sampled_from([1, 9, 25]))
def test_exact_products_are_strict_in_any_order(sizes, channelwise, area):
    sizes = [1, *sizes] if channelwise else sizes
    channels = math.prod(sizes)
    product = KernelProduct.from_branch_sizes(channels, sizes, area)
    counts = product.path_counts
    assert (counts == 1).all()
    assert (counts == brute_force_counts(product)).all()
    assert product.condition == STRICT


@st.composite
def random_products(draw):
    """Random chains of group convolutions, widths changing as a group count allows."""
    width = draw(st.sampled_from([4, 6, 8, 12, 16, 18, 24, 32, 36]))
    factors = []
    for index in range(draw(st.integers(1, 4))):
        groups = draw(st.sampled_from(divisors(width)))
        out = groups * draw(st.integers(1, max(1, 48 // groups)))
        factors.append(Factor(width, out, groups, 9 if index == 0 else 1))
        width = out
    return KernelProduct(tuple(factors), shuffle_last=draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(product=random_products())
def test_fast_path_counts_equal_brute_force(product):
    counts = product.path_counts
    assert (counts == brute_force_counts(product)).all()
    c = product.connectivity
    assert c.min_paths == counts.min() and c.max_paths == counts.max()
    assert c.connected_fraction == pytest.approx((counts > 0).mean())
    reduces = product.factors[-1].in_channels > product.out_channels  # a low-rank end
    expected = (STRICT if (counts == 1).all() else
                SPARSE if (counts == 0).any() else
                RELAXED if c.min_paths == c.max_paths and reduces else DENSE)
    assert c.condition == expected


def test_shuffle_permutation_is_channel_shuffle():
    # 6 channels in 2 groups: [0 1 2 | 3 4 5] -> [0 3 1 4 2 5]
    assert shuffle_permutation(6, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert shuffle_permutation(6, 3).tolist() == [0, 2, 4, 1, 3, 5]


def test_issue_examples():
    best = design(64, layers=3).best
    assert best.branch_sizes == (1, 8, 8) and best.params == 1600
    assert best.product.condition == STRICT
    loose = KernelProduct.from_branch_sizes(1024, [1, 128, 128]).connectivity
    assert loose.condition == DENSE and loose.min_paths == loose.max_paths == 16


def test_sparse_design_reports_connected_fraction():
    c = KernelProduct.from_branch_sizes(64, [1, 4, 4]).connectivity
    assert c.condition == SPARSE
    assert c.connected_fraction == pytest.approx(16 / 64)


@settings(max_examples=60, deadline=None)
@given(sizes=exact_sizes, area=st.sampled_from([1, 9]))
def test_params_match_eq7_and_respect_the_bound(sizes, area):
    channels = math.prod(sizes)
    product = KernelProduct.from_branch_sizes(channels, sizes, area)
    assert product.params == params_formula(channels, sizes, area)
    assert product.params >= params_bound(channels, len(sizes), area) - 1e-6


def test_bound_is_met_under_the_balance_condition():
    # S = 1, C = 64, L = 3: K = 4, 4, 4 is balanced and Q = C L C^(1/L).
    assert params_formula(64, [4, 4, 4], 1) == pytest.approx(params_bound(64, 3, 1))
    # S = 9, C = 81 * 9 / 9: S K_1 = K_2 = K_3 = 9 -> K_1 = 1, C = 81.
    assert params_formula(81, [1, 9, 9], 9) == pytest.approx(params_bound(81, 3, 9))
    assert balanced_branch_sizes(81, 3, 9) == pytest.approx((1.0, 9.0, 9.0))


def test_best_layers_follows_eq14():
    assert best_layers_real(64, 9) == pytest.approx(math.log(9 * 64))
    best = best_layers(64, 9)
    assert all(params_bound(64, best, 9) <= params_bound(64, n, 9) for n in range(1, 20))


@settings(max_examples=40, deadline=None)
@given(channels=st.integers(2, 400), layers=st.integers(1, 4), channelwise=st.booleans())
def test_designer_finds_the_cheapest_exact_design(channels, layers, channelwise):
    divs = divisors(channels)
    brute = [
        ks for ks in itertools.product(divs, repeat=layers)
        if math.prod(ks) == channels and all(k >= 2 for k in ks[1:])
        and (not channelwise or ks[0] == 1)
    ]
    if not brute:
        return
    report = design(channels, layers=layers, channelwise=channelwise)
    cheapest = min(params_formula(channels, ks) for ks in brute)
    assert report.best.params == cheapest
    assert report.note == ""
    params = [d.params for d in report.designs]
    assert params == sorted(params)
    assert all(d.product.condition == STRICT for d in report.designs)


def test_designer_falls_back_to_a_loose_design_for_a_prime_width():
    report = design(67, layers=3, channelwise=True)
    assert report.note and "no strictly complementary" in report.note
    assert report.best.product.condition == DENSE
    assert {d.channels for d in report.nearby} == {66, 68}
    assert all(d.exact for d in report.nearby)


def test_designer_fixed_branch_size_is_igcv2_star():
    report = design(216, branch_size=8)
    assert report.best.branch_sizes == (1, 8, 8, 8)  # L* = ceil(log_8 216) + 1 = 4
    assert report.best.product.condition == DENSE and report.note
    exact = design(512, branch_size=8)
    assert exact.best.branch_sizes == (1, 8, 8, 8) and exact.note == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "positive integer"),
        ({"channels": -3}, "positive integer"),
        ({"channels": 2.5}, "positive integer"),
        ({"channels": 100, "branch_size": 8}, "does not divide"),
        ({"channels": 64, "layers": 0}, "positive integer"),
    ],
)
def test_designer_rejects_bad_input(kwargs, message):
    with pytest.raises(IGCError, match=message):
        design(**kwargs)


def test_factor_rejects_branches_that_do_not_divide():
    with pytest.raises(IGCError, match="do not divide"):
        Factor(10, 10, 3)
    with pytest.raises(IGCError, match="does not divide"):
        KernelProduct.from_branch_sizes(12, [1, 5])
    with pytest.raises(IGCError, match="do not chain"):
        KernelProduct((Factor(8, 16, 2), Factor(8, 8, 2)))


def test_factorizations_are_complete():
    assert sorted(factorizations(12, 2)) == [(2, 6), (3, 4)]
    assert list(factorizations(7, 2)) == []
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]


def test_nonzero_ratio_of_xception_and_igcv2():
    xception = KernelProduct.from_branch_sizes(64, [1, 64])
    assert nonzero_ratio(xception) == pytest.approx((9 * 64 + 64 * 64) / (9 * 64 * 64))


def test_widening_loose_blocks_are_dense_and_igcv3_chains_relaxed():
    """Issue 10: a stage transition of the ImageNet IGCV2 networks (128 -> 256 channels,
    groups 128, 8, 8) joins every pair equally often but is loose, not IGCV3's relaxed
    condition; IGCV3's expand / filter / reduce chains are relaxed, also at expansion 1."""
    widening = KernelProduct((Factor(128, 128, 128, 9), Factor(128, 256, 8),
                              Factor(256, 256, 8)), shuffle_last=True)
    c = widening.connectivity
    assert c.condition == DENSE and c.min_paths == c.max_paths > 1
    for c_in, inner, c_out in ((16, 96, 16), (16, 96, 24), (32, 32, 16)):
        igcv3 = KernelProduct((Factor(c_in, inner, 2), Factor(inner, inner, inner, 9),
                               Factor(inner, c_out, 2)))
        c = igcv3.connectivity
        assert c.condition == RELAXED and c.min_paths == c.max_paths > 1
        assert c.super_channel == c.max_paths


def test_connectivity_of_wide_products_needs_no_matrix():
    """Issue 13: the summary of a C = 16384 design takes no C x C matrix; the matrix itself
    is refused above its limit with the limit in the message."""
    from igc.sparsity.product import MAX_PATH_ENTRIES

    wide = KernelProduct.from_branch_sizes(16384, [1, 128, 128])
    assert wide.connectivity == Connectivity(STRICT, 1, 1, 1.0)
    loose = KernelProduct.from_branch_sizes(16384, [1, 2, 2]).connectivity
    assert loose.condition == SPARSE and loose.connected_fraction == pytest.approx(4 / 16384)
    with pytest.raises(IGCError, match=f"limit of {MAX_PATH_ENTRIES:,}"):
        KernelProduct.from_branch_sizes(10**6, [1, 1000, 1000]).path_counts  # noqa: B018


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 64, "layers": 10**6}, "limit of 64 factors"),
    ({"channels": 64, "branch_size": 2, "layers": 65}, "limit of 64 factors"),
    ({"channels": 64, "kernel_area": 10**6}, "kernel area"),
    ({"channels": 10**6}, "designer's limit 16384"),
])
def test_designer_sizes_are_bounded(kwargs, message):
    with pytest.raises(IGCError, match=message):
        design(**kwargs)


@st.composite
def fixed_width_products(draw):
    """IGCV2 chains on one width: branch sizes that divide C, in any order and number."""
    width = draw(st.sampled_from([12, 24, 36, 48, 64, 96, 128, 144, 240, 256, 360, 512]))
    sizes = draw(st.lists(st.sampled_from(divisors(width)), min_size=1, max_size=6))
    return KernelProduct.from_branch_sizes(width, sizes, draw(st.sampled_from([1, 9])),
                                           shuffle_last=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(product=fixed_width_products())
def test_summary_equals_the_path_count_matrix(product):
    """The matrix-free summary (igc.sparsity.paths) against the C x C path counts."""
    from igc.sparsity.paths import path_summary

    counts = product.path_counts
    assert path_summary(product) == (counts.min(), counts.max(), np.count_nonzero(counts))
