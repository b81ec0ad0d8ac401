"""Parameter cost of an IGCV2 block and the balance condition (IGCV2 paper, eqs. 7-14).

For a chain on a fixed width ``C`` whose first factor is spatial with ``S`` taps and whose
other factors are 1x1, with branch sizes ``K_1..K_L``:

* ``Q = C S K_1 + C sum_{l>=2} K_l``                       (eq. 7)
* ``Q >= C L (S C)^(1/L)`` when ``prod K_l = C``           (eqs. 8-10, Jensen)
* equality iff ``S K_1 = K_2 = ... = K_L = (S C)^(1/L)``   (eq. 11, the balance condition)
* ``Q`` as a function of ``L`` is smallest at ``L = ln(S C)``   (eqs. 12-14)

With the recommended channel-wise first factor (``K_1 = 1``) the 1x1 part alone is balanced:
``K_2 = ... = K_L = C^(1/(L-1))`` and ``Q >= C S + C (L-1) C^(1/(L-1))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from igc.sparsity.product import positive_int


def params_formula(channels: int, branch_sizes: Sequence[int], kernel_area: int = 9) -> int:
    """``Q`` of eq. 7 for branch sizes ``(K_1, ..., K_L)``, the first factor spatial."""
    first, *rest = branch_sizes
    return channels * kernel_area * first + channels * sum(rest)


def params_bound(channels: int, layers: int, kernel_area: int = 9,
                 channelwise: bool = False) -> float:
    """The lower bound on ``Q`` for ``L`` factors: ``C L (S C)^(1/L)`` (eq. 10).

    With a channel-wise spatial factor: ``C S + C (L-1) C^(1/(L-1))``."""
    c = positive_int(channels, "channels")
    layers = positive_int(layers, "layers")
    if channelwise:
        if layers == 1:
            return float(c * kernel_area)
        return c * kernel_area + c * (layers - 1) * c ** (1 / (layers - 1))
    return c * layers * (kernel_area * c) ** (1 / layers)


def balanced_branch_sizes(channels: int, layers: int, kernel_area: int = 9,
                          channelwise: bool = False) -> tuple[float, ...]:
    """Real-valued branch sizes meeting the balance condition (eq. 11)."""
    if channelwise:
        if layers == 1:
            return (1.0,)
        k = channels ** (1 / (layers - 1))
        return (1.0, *([k] * (layers - 1)))
    k = (kernel_area * channels) ** (1 / layers)
    return (k / kernel_area, *([k] * (layers - 1)))


def best_layers_real(channels: int, kernel_area: int = 9, channelwise: bool = False) -> float:
    """The ``L`` minimising the bound: ``ln(S C)`` (eq. 14).

    With a channel-wise spatial factor ``1 + ln C`` (the 1x1 part alone then follows eq. 14
    with ``S = 1``)."""
    return 1 + math.log(channels) if channelwise else math.log(kernel_area * channels)


def best_layers(channels: int, kernel_area: int = 9, channelwise: bool = False) -> int:
    """The integer ``L`` with the smallest bound, next to :func:`best_layers_real`."""
    real = best_layers_real(channels, kernel_area, channelwise)
    candidates = {max(1, math.floor(real)), max(1, math.ceil(real))}
    return min(candidates, key=lambda n: (params_bound(channels, n, kernel_area, channelwise), n))


def balance_gap(branch_sizes: Sequence[int], kernel_area: int = 9) -> float:
    """How far a design is from the balance condition (eq. 11); 0 when balanced.

    The spread (max - min) of ``log(S K_1), log K_2, ..., log K_L``. A channel-wise first
    factor (``K_1 = 1``) is judged on its 1x1 factors only, as the paper recommends."""
    first, *rest = branch_sizes
    terms = [math.log(k) for k in rest]
    if first != 1 or not rest:
        terms.append(math.log(kernel_area * first))
    return max(terms) - min(terms) if terms else 0.0
