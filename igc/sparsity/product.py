"""Structured-sparse kernel products: the algebra of IGC blocks (IGCV2 paper, eqs. 4-6).

A block computes ``y = P_L W_L ... P_1 W_1 x`` (eq. 4). Each ``W_l`` is block-diagonal, a
group convolution; each ``P_l`` is a permutation. Here a :class:`Factor` describes one
``W_l`` (widths, number of branches, kernel area) and a :class:`KernelProduct` the whole
chain with the interleaving permutations between the factors.

The permutation convention is ShuffleNet's channel shuffle: after a factor with ``g``
branches, view its ``C`` output channels as a ``(g, C/g)`` matrix and transpose it, so
channel ``i*(C/g) + j`` moves to position ``j*g + i``. With this convention a chain of
branch sizes ``K_1..K_L`` whose product is ``C`` is strictly complementary in any order
(write a channel's index in the mixed radix ``K_1, ..., K_L``: factor ``l`` joins the
channels that agree on every digit but the ``l``-th, so each input reaches each output
along exactly one path), and the same rule defines the loose designs.

Everything here is plain Python and NumPy: no ``torch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from igc.errors import IGCError
from igc.sparsity.paths import path_summary

#: Names of the connectivity conditions, strongest first.
STRICT, RELAXED, DENSE, SPARSE = "strict", "relaxed", "dense", "sparse"
#: The most entries :attr:`KernelProduct.path_counts` materialises (``C_out x C_in``
#: int64 values: 512 MiB); :attr:`KernelProduct.connectivity` needs no such matrix.
MAX_PATH_ENTRIES = 1 << 26


def positive_int(value: object, what: str) -> int:
    """``value`` as an int if it is a positive integer (NumPy's too), else IGCError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise IGCError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Factor:
    """One group convolution ``W_l`` of a kernel product.

    ``groups`` branches map ``in_channels`` to ``out_channels`` with a kernel of
    ``kernel_area`` taps (9 for 3x3, 1 for 1x1). Branch ``b`` maps input channels
    ``[b*in/g, (b+1)*in/g)`` to output channels ``[b*out/g, (b+1)*out/g)``; its weight has
    shape ``(out/g, in/g, k, k)``."""

    in_channels: int
    out_channels: int
    groups: int
    kernel_area: int = 1

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "groups", "kernel_area"):
            positive_int(getattr(self, name), name.replace("_", " "))
        for side in ("in_channels", "out_channels"):
            width = getattr(self, side)
            if width % self.groups:
                raise IGCError(
                    f"{self.groups} branches do not divide {width} {side.split('_')[0]}put "
                    f"channels; choose a number of branches that divides the width"
                )

    @classmethod
    def from_branch_size(
        cls, channels: int, branch_size: int, kernel_area: int = 1, out_channels: int | None = None
    ) -> Factor:
        """A factor on ``channels`` inputs whose branches hold ``branch_size`` input channels."""
        channels = positive_int(channels, "channels")
        branch_size = positive_int(branch_size, "branch size")
        if channels % branch_size:
            raise IGCError(
                f"branch size {branch_size} does not divide the width {channels}; "
                f"use a divisor of {channels}"
            )
        out = channels if out_channels is None else out_channels
        return cls(channels, out, channels // branch_size, kernel_area)

    @property
    def branch_in(self) -> int:
        """Input channels per branch (the paper's ``K_l`` when widths are equal)."""
        return self.in_channels // self.groups

    @property
    def branch_out(self) -> int:
        """Output channels per branch."""
        return self.out_channels // self.groups

    @property
    def params(self) -> int:
        """Weights of this factor: ``out * (in/g) * S``."""
        return self.out_channels * self.branch_in * self.kernel_area

    @property
    def is_spatial(self) -> bool:
        """Whether the kernel has more than one tap (a spatial factor)."""
        return self.kernel_area > 1

    def mask(self) -> np.ndarray:
        """Connectivity ``(out, in)`` as a 0/1 int matrix.

        Block-diagonal with ``groups`` blocks of shape ``(out/g, in/g)``."""
        return np.kron(np.eye(self.groups, dtype=np.int64),
                       np.ones((self.branch_out, self.branch_in), dtype=np.int64))


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """Channel shuffle as an index array ``perm``: ``shuffled = x[perm]``.

    ``x`` viewed as ``(groups, channels/groups)`` and transposed, so the new channel
    ``j*groups + i`` is the old channel ``i*(channels/groups) + j``.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


@dataclass(frozen=True)
class KernelProduct:
    """The composed kernel ``P_L W_L ... P_1 W_1`` of a chain of factors (eq. 4).

    ``shuffle_last`` says whether ``P_L`` (a shuffle after the last factor) is applied; it
    only relabels the outputs, so it never changes the condition met.
    """

    factors: tuple[Factor, ...]
    shuffle_last: bool = False

    def __post_init__(self) -> None:
        if not self.factors:
            raise IGCError("a kernel product needs at least one factor")
        object.__setattr__(self, "factors", tuple(self.factors))
        for a, b in zip(self.factors, self.factors[1:]):
            if a.out_channels != b.in_channels:
                raise IGCError(
                    f"factor widths do not chain: {a.out_channels} channels out, "
                    f"{b.in_channels} in; make each factor's input width the previous output"
                )

    @classmethod
    def from_branch_sizes(
        cls, channels: int, branch_sizes: tuple[int, ...] | list[int], kernel_area: int = 9,
        shuffle_last: bool = False,
    ) -> KernelProduct:
        """The IGCV2 chain on a fixed width ``C`` with branch sizes ``K_1..K_L``.

        The first factor is spatial (area ``S``), the others 1x1; factor ``l`` has branches of
        ``K_l`` channels."""
        sizes = [positive_int(k, "branch size") for k in branch_sizes]
        if not sizes:
            raise IGCError("give at least one branch size")
        factors = tuple(
            Factor.from_branch_size(channels, k, kernel_area if i == 0 else 1)
            for i, k in enumerate(sizes)
        )
        return cls(factors, shuffle_last)

    @property
    def in_channels(self) -> int:
        """Input channels of the first factor."""
        return self.factors[0].in_channels

    @property
    def out_channels(self) -> int:
        """Output channels of the last factor."""
        return self.factors[-1].out_channels

    @property
    def layers(self) -> int:
        """``L``, the number of factors."""
        return len(self.factors)

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        """``K_l``: input channels per branch of each factor."""
        return tuple(f.branch_in for f in self.factors)

    @property
    def params(self) -> int:
        """Weights of all factors (eq. 7 when widths are equal: ``C S K_1 + C sum K_l``)."""
        return sum(f.params for f in self.factors)

    def permutation(self, index: int) -> np.ndarray | None:
        """``P_{index+1}`` after factor ``index`` as an index array, or ``None``.

        ``None`` when it is the identity (one branch, one channel per branch, or the unshuffled
        last factor)."""
        factor = self.factors[index]
        last = index == len(self.factors) - 1
        if (last and not self.shuffle_last) or factor.groups in (1, factor.out_channels):
            return None
        return shuffle_permutation(factor.out_channels, factor.groups)

    @cached_property
    def path_counts(self) -> np.ndarray:
        """Exact number of paths from every input to every output channel, ``(out, in)``.

        Computed factor by factor in O(L C^2): a group convolution sums the rows of its
        branch and repeats them for each of the branch's outputs. IGCError above
        :data:`MAX_PATH_ENTRIES` entries (C = 8192 on a fixed width); the summary
        :attr:`connectivity` has no such limit.
        """
        entries = self.out_channels * self.in_channels
        if entries > MAX_PATH_ENTRIES:
            raise IGCError(
                f"the path-count matrix of {self.out_channels} x {self.in_channels} channels "
                f"has {entries:,} entries, over the limit of {MAX_PATH_ENTRIES:,} "
                f"(C = {math.isqrt(MAX_PATH_ENTRIES):,} on a fixed width); use .connectivity "
                f"for the paths' minimum, maximum and connected fraction")
        counts = np.eye(self.in_channels, dtype=np.int64)
        for index, factor in enumerate(self.factors):
            summed = counts.reshape(factor.groups, factor.branch_in, -1).sum(axis=1)
            counts = np.repeat(summed, factor.branch_out, axis=0)
            perm = self.permutation(index)
            if perm is not None:
                counts = counts[perm]
        return counts

    def dense_matrix(self, weights: list[np.ndarray]) -> np.ndarray:
        """The composed ``(out, in)`` matrix for given per-factor weights.

        ``weights[l]`` has shape ``(out_l, in_l / g_l)`` (a 1x1 group convolution's weight
        with the spatial taps already reduced); each is placed block-diagonally, then the
        permutation is applied as an explicit permutation matrix.
        """
        total = np.eye(self.in_channels)
        for index, (factor, w) in enumerate(zip(self.factors, weights)):
            blocks = np.zeros((factor.out_channels, factor.in_channels))
            for b in range(factor.groups):
                rows = slice(b * factor.branch_out, (b + 1) * factor.branch_out)
                cols = slice(b * factor.branch_in, (b + 1) * factor.branch_in)
                blocks[rows, cols] = w[rows]
            total = blocks @ total
            perm = self.permutation(index)
            if perm is not None:
                total = np.eye(factor.out_channels)[perm] @ total
        return total

    @cached_property
    def connectivity(self) -> Connectivity:
        """The :class:`Connectivity` summary (condition, paths per pair)."""
        return Connectivity.of(self)

    @property
    def condition(self) -> str:
        """The connectivity condition: strict, relaxed, dense or sparse."""
        return self.connectivity.condition


@dataclass(frozen=True)
class Connectivity:
    """Summary of a path-count matrix.

    ``condition`` is ``"strict"`` (exactly one path between every output and input: the
    complementary condition, eq. 6), ``"relaxed"`` (every pair joined by the same number
    ``p > 1`` of paths, and the last factor reduces a wider inner representation, as in
    IGCV3's low-rank chains that expand (or keep), filter, then reduce: IGCV3's relaxed
    complementary condition, each super-channel of ``p`` inner channels joining a pair
    exactly once), ``"dense"`` (every pair joined, some or all more than once: the loose
    condition; this includes a widening chain with ``p`` paths per pair, such as the
    stage transitions of the ImageNet IGCV2 networks) or
    ``"sparse"`` (some pairs not joined; ``connected_fraction`` says how many are).
    """

    condition: str
    min_paths: int
    max_paths: int
    connected_fraction: float

    @classmethod
    def of(cls, product: KernelProduct) -> Connectivity:
        """The summary of ``product``, without its path-count matrix.

        Computed by :func:`~igc.sparsity.paths.path_summary`."""
        lo, hi, joined = path_summary(product)
        fraction = float(joined) / (product.out_channels * product.in_channels)
        reduces = product.factors[-1].in_channels > product.out_channels
        if lo == hi == 1:
            condition = STRICT
        elif lo == hi and reduces:
            condition = RELAXED
        elif lo >= 1:
            condition = DENSE
        else:
            condition = SPARSE
        return cls(condition, lo, hi, fraction)

    @property
    def super_channel(self) -> int:
        """Paths per pair under the relaxed condition (1 when strict)."""
        return self.max_paths if self.condition in (STRICT, RELAXED) else 0


def nonzero_ratio(product: KernelProduct) -> float:
    """Non-sparsity, the quantity of the paper's Figure 3: ``Q / (S C_out C_in)``.

    Non-zero weights over the size of the composed dense kernel."""
    area = max(f.kernel_area for f in product.factors)
    return product.params / (area * product.out_channels * product.in_channels)

