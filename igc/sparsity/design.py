"""The designer: which branch sizes ``K_1..K_L`` to use for a width ``C``.

:func:`design` enumerates the strictly complementary integer designs (``prod K_l = C``,
eq. 6) and ranks them by parameters ``Q`` (eq. 7), the closest to the balance condition
(eq. 11) first among equals, then the shallower. Where no exact design exists (a prime
``C`` with ``L >= 3``, a fixed ``K`` whose power is not ``C``) it returns the cheapest loose
design whose composed kernel is still dense, says so, and names nearby widths that do have
exact designs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from igc.errors import IGCError
from igc.sparsity.cost import balance_gap, best_layers, params_bound
from igc.sparsity.product import DENSE, STRICT, KernelProduct, positive_int

#: Largest width ``C`` the designer accepts.
MAX_WIDTH = 1 << 14
#: Most factors ``L`` a design may have: a strictly complementary design of a width up to
#: :data:`MAX_WIDTH` has at most 15 (one per prime factor, and the spatial one); more only
#: add 1x1 factors to a kernel that is already dense.
MAX_LAYERS = 64
#: Largest spatial kernel area ``S`` (taps; 9 for 3x3).
MAX_KERNEL_AREA = 1024
#: The largest product of branch sizes classified: it bounds the number of paths between
#: an output and an input, which are counted in 64-bit integers.
MAX_PATHS = 1 << 62
#: Most ranked designs a report keeps or shows.
MAX_ALTERNATIVES = 1000


def divisors(n: int) -> list[int]:
    """All positive divisors of ``n``, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small) | {n // d for d in small})


def factorizations(n: int, parts: int, smallest: int = 2) -> Iterator[tuple[int, ...]]:
    """Non-decreasing tuples of ``parts`` integers ``>= smallest`` whose product is ``n``."""
    if parts == 0:
        if n == 1:
            yield ()
        return
    if parts == 1:
        if n >= smallest:
            yield (n,)
        return
    for d in divisors(n):
        if d < smallest:
            continue
        if d ** parts > n:
            break
        for rest in factorizations(n // d, parts - 1, d):
            yield (d, *rest)


@dataclass(frozen=True)
class Design:
    """One candidate: branch sizes on width ``channels``, first factor spatial."""

    channels: int
    branch_sizes: tuple[int, ...]
    kernel_area: int = 9

    @cached_property
    def product(self) -> KernelProduct:
        """The kernel product of these branch sizes (:class:`KernelProduct`)."""
        return KernelProduct.from_branch_sizes(self.channels, self.branch_sizes, self.kernel_area)

    @property
    def layers(self) -> int:
        """``L``, the number of factors."""
        return len(self.branch_sizes)

    @property
    def exact(self) -> bool:
        """Whether the branch sizes multiply to ``C`` (strictly complementary, eq. 6)."""
        return math.prod(self.branch_sizes) == self.channels

    @property
    def params(self) -> int:
        """``Q``, the weights of all factors (eq. 7)."""
        return self.product.params

    @property
    def bound(self) -> float:
        """The lower bound on ``Q`` for this ``L`` (eq. 10)."""
        return params_bound(self.channels, self.layers, self.kernel_area)

    @property
    def bound_channelwise(self) -> float | None:
        """The tighter bound of the channel-wise family (``K_1 = 1``), or ``None``."""
        if self.branch_sizes[0] != 1:
            return None
        return params_bound(self.channels, self.layers, self.kernel_area, channelwise=True)

    @property
    def balance_gap(self) -> float:
        """The distance from the balance condition (eq. 11); 0 when balanced."""
        return balance_gap(self.branch_sizes, self.kernel_area)

    def rank_key(self) -> tuple[int, float, int]:
        """The ranking: fewest parameters, then most balanced, then shallowest."""
        return (self.params, round(self.balance_gap, 9), self.layers)

    def to_dict(self) -> dict:
        """This design as a JSON-ready dict (``igc design --json``)."""
        c = self.product.connectivity
        return {
            "channels": self.channels,
            "kernel_area": self.kernel_area,
            "layers": self.layers,
            "branch_sizes": list(self.branch_sizes),
            "groups": [f.groups for f in self.product.factors],
            "params": self.params,
            "bound": round(self.bound, 2),
            "bound_channelwise": (None if self.bound_channelwise is None
                                  else round(self.bound_channelwise, 2)),
            "condition": c.condition,
            "min_paths": c.min_paths,
            "max_paths": c.max_paths,
            "connected_fraction": c.connected_fraction,
            "balance_gap": round(self.balance_gap, 4),
        }


@dataclass
class DesignReport:
    """The ranked designs for one request, with a note when none is exact."""

    channels: int
    kernel_area: int
    designs: list[Design]
    note: str = ""
    nearby: list[Design] = field(default_factory=list)
    channelwise: bool = False

    @property
    def best(self) -> Design:
        """The first-ranked design."""
        return self.designs[0]

    @property
    def best_layers_rule(self) -> str:
        """The rule :func:`~igc.sparsity.cost.best_layers` followed, for the report.

        Eq. 14's ``L = ln(S C)``, or for a channel-wise spatial factor eq. 14 on the 1x1
        factors alone plus that factor, ``L = 1 + ln C``."""
        return "eq. 14 on the 1x1 factors (L = 1 + ln C)" if self.channelwise else "eq. 14"

    def to_dict(self, alternatives: int = 5) -> dict:
        """The best design, ``alternatives`` more and the nearby widths, JSON-ready."""
        out = self.best.to_dict()
        out["best_layers"] = best_layers(self.channels, self.kernel_area, self.channelwise)
        out["note"] = self.note
        out["alternatives"] = [d.to_dict() for d in self.designs[1 : 1 + alternatives]]
        out["nearby"] = [d.to_dict() for d in self.nearby]
        return out


def _exact(channels: int, layers: int, kernel_area: int, channelwise: bool) -> list[Design]:
    firsts = [1] if channelwise else divisors(channels)
    return [
        Design(channels, (k1, *rest), kernel_area)
        for k1 in firsts
        for rest in factorizations(channels // k1, layers - 1)
    ]


def _max_layers(channels: int) -> int:
    """``1 +`` the number of prime factors of ``channels`` (with multiplicity)."""
    count, n, p = 0, channels, 2
    while p * p <= n:
        while n % p == 0:
            n, count = n // p, count + 1
        p += 1
    return 1 + count + (n > 1)


def _loose(channels: int, layers: int, kernel_area: int, channelwise: bool,
           limit: int) -> list[Design]:
    """Cheapest designs with equal 1x1 branch sizes whose kernel is dense but not exact."""
    divs = divisors(channels)
    candidates = sorted(
        (
            Design(channels, (k1, *([k] * (layers - 1))), kernel_area)
            for k1 in ([1] if channelwise else divs)
            for k in divs[1:]
            if channels < k1 * k ** (layers - 1) <= MAX_PATHS
        ),
        key=Design.rank_key,
    )
    found = []
    for d in candidates:
        if d.product.condition == DENSE:
            found.append(d)
            if len(found) == limit:
                break
    return found


def _nearby(channels: int, layers: int, kernel_area: int, channelwise: bool) -> list[Design]:
    """The closest widths below and above ``channels`` with an exact design of ``layers``."""
    out = []
    for step in (-1, 1):
        c = channels + step
        while 1 <= c <= min(2 * channels, MAX_WIDTH):
            exact = _exact(c, layers, kernel_area, channelwise)
            if exact:
                out.append(min(exact, key=Design.rank_key))
                break
            c += step
    return out


def check_request(channels: int, kernel_area: int) -> tuple[int, int]:
    """``(channels, kernel_area)`` checked against the designer's limits, else IGCError."""
    channels = positive_int(channels, "channels")
    kernel_area = positive_int(kernel_area, "kernel area")
    if channels > MAX_WIDTH:
        raise IGCError(f"channels {channels} is above the designer's limit {MAX_WIDTH}")
    if kernel_area > MAX_KERNEL_AREA:
        raise IGCError(f"kernel area {kernel_area} is above the designer's limit "
                       f"{MAX_KERNEL_AREA} taps")
    return channels, kernel_area


def check_layers(layers: int) -> int:
    """``layers`` (``L``, the number of factors) if it is within :data:`MAX_LAYERS`."""
    layers = positive_int(layers, "layers")
    if layers > MAX_LAYERS:
        raise IGCError(f"layers {layers:,} is above the designer's limit of {MAX_LAYERS} "
                       f"factors (a width up to {MAX_WIDTH:,} needs at most 15 for a "
                       "strictly complementary design)")
    return layers


def check_design(channels: int, branch_sizes: Sequence[int], kernel_area: int = 9,
                 strict: bool = False) -> DesignReport:
    """Classify the branch sizes ``K_1..K_L`` on width ``channels`` (``--check``).

    ``strict`` refuses sizes whose product is not ``C`` (eq. 6)."""
    channels, kernel_area = check_request(channels, kernel_area)
    sizes = tuple(positive_int(k, "branch size") for k in branch_sizes)
    if not sizes:
        raise IGCError("give the branch sizes to check, e.g. 1,8,8")
    check_layers(len(sizes))
    if strict and math.prod(sizes) != channels:
        raise IGCError(f"branch sizes {list(sizes)} multiply to {math.prod(sizes)}, not "
                       f"C={channels}: not strictly complementary (eq. 6); drop --strict "
                       "to classify a loose design")
    if math.prod(sizes) > MAX_PATHS:
        raise IGCError(f"branch sizes {list(sizes)} multiply to {math.prod(sizes):,}: over "
                       f"{MAX_PATHS:,} paths per pair cannot be counted; use fewer or "
                       "smaller factors")
    chosen = Design(channels, sizes, kernel_area)
    chosen.product  # noqa: B018  (validates the sizes)
    return DesignReport(channels, kernel_area, [chosen])


def design(
    channels: int,
    kernel_area: int = 9,
    layers: int | None = None,
    branch_size: int | None = None,
    channelwise: bool = False,
    limit: int = 10,
) -> DesignReport:
    """Rank the designs for width ``channels``.

    ``layers`` fixes ``L``; ``branch_size`` fixes every 1x1 factor's ``K`` with a
    channel-wise spatial factor, as in IGCV2* (``L = ceil(log_K C) + 1`` unless given);
    ``channelwise`` forces ``K_1 = 1`` (the paper's recommended form).
    """
    channels, kernel_area = check_request(channels, kernel_area)
    limit = positive_int(limit, "limit")
    if limit > MAX_ALTERNATIVES:
        raise IGCError(f"limit {limit} is above {MAX_ALTERNATIVES} designs")
    if branch_size is not None:
        return _fixed_branch(channels, kernel_area, positive_int(branch_size, "branch size"),
                             layers)
    if layers is not None:
        layers = check_layers(layers)
        counts = [layers]
    else:
        counts = range(1, _max_layers(channels) + 1)
    designs = sorted(
        (d for n in counts for d in _exact(channels, n, kernel_area, channelwise)),
        key=Design.rank_key,
    )
    if designs:
        return DesignReport(channels, kernel_area, designs[:limit], channelwise=channelwise)
    loose = _loose(channels, layers, kernel_area, channelwise, limit)
    nearby = _nearby(channels, layers, kernel_area, channelwise)
    hint = ", ".join(f"C={d.channels} {list(d.branch_sizes)}" for d in nearby)
    note = (f"no strictly complementary design of {layers} factors exists for C={channels}; "
            f"showing the cheapest loose (dense) design"
            + (f"; exact designs exist at {hint}" if hint else ""))
    if not loose:
        raise IGCError(f"no dense design of {layers} factors exists for C={channels} "
                       f"(with at most {MAX_PATHS:,} paths per pair); try fewer layers"
                       + (f" or a nearby width ({hint})" if hint else ""))
    return DesignReport(channels, kernel_area, loose, note, nearby, channelwise)


def _fixed_branch(channels: int, kernel_area: int, branch: int,
                  layers: int | None) -> DesignReport:
    if channels % branch:
        near = sorted(divisors(channels), key=lambda d: abs(d - branch))[:3]
        raise IGCError(f"branch size {branch} does not divide C={channels}; "
                       f"divisors of {channels} near it: {', '.join(map(str, near))}")
    if layers is None:
        layers = 1 + max(1, math.ceil(math.log(channels, branch) - 1e-9)) if branch > 1 else 2
    layers = check_layers(layers)
    chosen = Design(channels, (1, *([branch] * (layers - 1))), kernel_area)
    note = ""
    condition = chosen.product.condition
    if condition != STRICT:
        note = (f"K={branch} with L={layers} is not exact for C={channels} "
                f"(K^(L-1)={branch ** (layers - 1)}); the composed kernel is {condition}")
    return DesignReport(channels, kernel_area, [chosen], note, channelwise=True)
