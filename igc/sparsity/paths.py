"""The connectivity summary of a kernel product without its ``C_out x C_in`` matrix.

:func:`path_summary` gives the smallest and largest number of paths between an input and
an output channel, and how many pairs are joined, exactly as
:attr:`~igc.sparsity.product.KernelProduct.path_counts` would, in memory and time that
grow with the number of *distinct* columns of that matrix rather than with its size:

* inputs of one branch of the first factor have identical columns (a group convolution
  sums its branch's inputs), and columns that are identical stay identical through every
  later factor, so the inputs are tracked as classes with a multiplicity;
* outputs of one branch of the last factor have identical rows, and the last permutation
  only relabels rows, so each column is kept over the last factor's branches;
* each class's column is stored sparsely (branch index, path count) and classes whose
  columns become equal are merged after every factor.

For a strictly complementary design of width ``C`` this holds about ``C`` entries at every
factor (``C = 16384`` takes milliseconds, where the matrix would take 2 GiB); the working
arrays are built in chunks of at most ``_WORK_ENTRIES`` entries whatever the product.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from igc.sparsity.product import KernelProduct

#: Entries of the working arrays built at once (32 MiB of int64).
_WORK_ENTRIES = 1 << 22


def _merge(rows: np.ndarray, index: np.ndarray, count: np.ndarray, n_rows: int,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse entries ``(row, index, count)`` (duplicates summed, zeros dropped) as padded
    ``(n_rows, r)`` arrays of indices and counts (count 0 pads)."""
    keep = count > 0
    key = rows[keep] * width + index[keep]
    count = count[keep]
    order = np.argsort(key, kind="stable")
    key, count = key[order], count[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else key
    sums = np.add.reduceat(count, starts) if key.size else count
    key = key[starts] if key.size else key
    row, col = key // width, key % width
    nnz = np.bincount(row, minlength=n_rows)
    r = max(int(nnz.max(initial=0)), 1)
    first = np.r_[0, np.cumsum(nnz)[:-1]]
    slot = np.arange(key.size) - first[row]
    idx = np.zeros((n_rows, r), dtype=np.int64)
    cnt = np.zeros((n_rows, r), dtype=np.int64)
    idx[row, slot] = col
    cnt[row, slot] = sums
    return idx, cnt


def _dedup(idx: np.ndarray, cnt: np.ndarray, weight: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge equal rows (equal columns of the path-count matrix), adding their weights.

    Rows are grouped by a 64-bit hash and each group is checked to hold equal rows; a
    collision (never seen) falls back to NumPy's exact, slower row ``unique``."""
    both = np.concatenate([idx, cnt], axis=1)
    mix = np.random.default_rng(0).integers(1, 2**62, size=both.shape[1], dtype=np.int64)
    with np.errstate(over="ignore"):
        key = (both * mix).sum(axis=1)  # wraps around: a hash, checked below
    order = np.argsort(key, kind="stable")
    ranked = both[order]
    new = np.r_[True, key[order][1:] != key[order][:-1]]
    if not (ranked[1:][~new[1:]] == ranked[:-1][~new[1:]]).all():
        unique, inverse = np.unique(both, axis=0, return_inverse=True)
    else:
        unique = ranked[new]
        inverse = np.empty(len(both), dtype=np.int64)
        inverse[order] = np.cumsum(new) - 1
    merged = np.zeros(len(unique), dtype=np.int64)
    np.add.at(merged, inverse.reshape(-1), weight)
    r = idx.shape[1]
    return unique[:, :r], unique[:, r:], merged


def _step(idx: np.ndarray, cnt: np.ndarray, next_branch: np.ndarray, branch_out: int,
          width: int) -> tuple[np.ndarray, np.ndarray]:
    """From counts over one factor's branches to counts over the next factor's branches:
    branch ``b`` feeds rows ``b * branch_out + t``, which the permutation moves to the
    branches ``next_branch[row]`` of the next factor."""
    n, r = idx.shape
    rows = (idx[..., None] * branch_out + np.arange(branch_out)).reshape(n, r * branch_out)
    counts = np.repeat(cnt, branch_out, axis=1)
    owner = np.repeat(np.arange(n), r * branch_out)
    return _merge(owner, next_branch[rows].reshape(-1), counts.reshape(-1), n, width)


def path_summary(product: KernelProduct) -> tuple[int, int, int]:
    """``(min_paths, max_paths, joined_pairs)`` over every (output, input) pair.

    Equal to the minimum, maximum and non-zero count of ``product``'s path-count matrix."""
    factors = product.factors
    first = factors[0]
    idx = np.arange(first.groups, dtype=np.int64)[:, None]
    cnt = np.ones_like(idx)
    weight = np.full(first.groups, first.branch_in, dtype=np.int64)
    for index, (factor, following) in enumerate(itertools.pairwise(factors)):
        perm = product.permutation(index)
        position = np.argsort(perm) if perm is not None else np.arange(factor.out_channels)
        next_branch = position // following.branch_in
        chunk = max(1, _WORK_ENTRIES // (idx.shape[1] * factor.branch_out))
        parts = []
        for start in range(0, len(idx), chunk):
            part = _step(idx[start:start + chunk], cnt[start:start + chunk], next_branch,
                         factor.branch_out, following.groups)
            parts.append(_dedup(*part, weight[start:start + chunk]))
        width = max(p[0].shape[1] for p in parts)
        pad = [(np.pad(i, ((0, 0), (0, width - i.shape[1]))),
                np.pad(c, ((0, 0), (0, width - c.shape[1]))), w) for i, c, w in parts]
        idx, cnt, weight = _dedup(np.concatenate([p[0] for p in pad]),
                                  np.concatenate([p[1] for p in pad]),
                                  np.concatenate([p[2] for p in pad]))
    last = factors[-1]
    nnz = np.count_nonzero(cnt, axis=1)
    positive = cnt[cnt > 0]
    lo = 0 if (nnz < last.groups).any() else int(positive.min())
    hi = int(positive.max(initial=0))
    joined = int((weight * nnz).sum()) * last.branch_out
    return lo, hi, joined


__all__ = ["path_summary"]
