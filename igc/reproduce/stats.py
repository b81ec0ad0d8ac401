"""Statistics of a comparison over seeds: Student's t distribution and Welch's interval.

Pure Python (no SciPy): the t distribution's CDF is the regularised incomplete beta
function,

    F(t; v) = 1 - I_x(v/2, 1/2) / 2 = 1/2 + I_(1-x)(1/2, v/2) / 2,   x = v / (v + t^2),
    t >= 0 (the second form near t = 0, where x rounds to 1),

evaluated by its continued fraction (modified Lentz), and the quantile inverts it by
bisection, which works for any real ``v > 0`` (Welch's degrees of freedom are not
integers). :func:`welch` gives the difference of two means with its confidence interval;
:func:`verdict` turns that interval into a statement about a claimed ordering.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

AGREES = "agrees with the paper"
CONTRADICTS = "contradicts it"
UNRESOLVED = "not resolved at this budget"
UNTESTED = "not tested (needs 2 or more seeds of each network)"
NOT_RUN = "not run yet"
VERDICTS = (AGREES, CONTRADICTS, UNRESOLVED, UNTESTED, NOT_RUN)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``, ``0 <= x <= 1``."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` degrees of freedom (``inf``: normal)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    t2 = t * t
    if t2 < df:  # near 0: 1 - x = t^2 / (v + t^2) keeps its digits, x would round to 1
        half = 0.5 * betainc(0.5, df / 2.0, t2 / (df + t2))  # P(0 <= T <= |t|)
        return 0.5 + half if t >= 0 else 0.5 - half
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t2))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (e.g.
    ``t_quantile(0.975, 10) = 2.228``), by bisection on :func:`t_cdf`."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Welch:
    """``mean(a) - mean(b)`` with its standard error, Welch-Satterthwaite degrees of
    freedom and a two-sided confidence interval ``[low, high]`` at ``level``."""

    diff: float
    se: float
    df: float
    low: float
    high: float
    level: float
    n_a: int
    n_b: int


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Welch:
    """Welch's t interval for ``mean(a) - mean(b)`` (unequal variances); each sample needs
    at least 2 values. With both variances zero no interval can be estimated: it is
    ``(-inf, inf)`` (the verdict is then "not resolved") and ``df`` is NaN."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's interval needs at least 2 values in each sample")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    n_a, n_b = len(a), len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    wa, wb = statistics.variance(a) / n_a, statistics.variance(b) / n_b
    se = math.sqrt(wa + wb)
    if se == 0.0:  # no spread over seeds: no interval can be estimated
        return Welch(diff, 0.0, math.nan, -math.inf, math.inf, level, n_a, n_b)
    # Welch-Satterthwaite df = (wa + wb)^2 / (wa^2/(n_a-1) + wb^2/(n_b-1)), written with the
    # shares of wa + wb so that tiny variances cannot underflow to a zero denominator
    share_a, share_b = wa / (wa + wb), wb / (wa + wb)
    df = 1.0 / (share_a * share_a / (n_a - 1) + share_b * share_b / (n_b - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return Welch(diff, se, df, diff - half, diff + half, level, n_a, n_b)


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Welch:
    """The paired t interval for ``mean(a - b)`` over matched values (the same seeds: the
    same data order and augmentation draws), ``n - 1`` degrees of freedom; at least 2
    pairs. Zero spread of the differences gives ``(-inf, inf)`` as :func:`welch` does."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired interval needs at least 2 matched pairs")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    d = [x - y for x, y in zip(a, b)]
    n, diff = len(d), statistics.fmean(d)
    se = statistics.stdev(d) / math.sqrt(n)
    if se == 0.0:
        return Welch(diff, 0.0, math.nan, -math.inf, math.inf, level, n, n)
    half = t_quantile(0.5 + level / 2.0, n - 1) * se
    return Welch(diff, se, float(n - 1), diff - half, diff + half, level, n, n)


def p_value(interval: Welch) -> float:
    """The two-sided p-value of ``interval``'s difference against 0 (1 without spread)."""
    if interval.se == 0.0 or math.isnan(interval.df):
        return 1.0
    return min(1.0, 2.0 * (1.0 - t_cdf(abs(interval.diff) / interval.se, interval.df)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: sorted ascending, the
    ``i``-th (from 0) of ``m`` is ``max_{j <= i} min(1, (m - j) p_(j))``. Rejecting where
    the adjusted value is below ``alpha`` keeps the family-wise error at ``alpha``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def verdict(interval: Welch | None) -> str:
    """What an interval for ``claimed better - claimed worse`` says about the claim:
    :data:`AGREES` when it lies above 0, :data:`CONTRADICTS` below 0, else
    :data:`UNRESOLVED`; :data:`UNTESTED` without an interval."""
    if interval is None:
        return UNTESTED
    if interval.low > 0:
        return AGREES
    if interval.high < 0:
        return CONTRADICTS
    return UNRESOLVED


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``None`` where there are too few values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else None)
