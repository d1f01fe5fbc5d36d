"""Power, minimum detectable effect and sample size for a two-variation test with an even split.

Inputs are in the metric's units: ``effect`` is an absolute difference δ (a relative lift r on a
baseline mean μ is ``δ = r·μ``) and ``unit_variance`` is σ² per unit (``p(1 − p)`` for a conversion
rate). With ``n`` units per variation, ``se = √(2σ²/n)`` and (normal approximation)

    frequentist: power = Φ(δ/se − z_{1−α/2}) + Φ(−δ/se − z_{1−α/2})
    sequential:  power = Φ((δ − h)/se) + Φ((−δ − h)/se),  h = confidence-sequence half-width at 2n units

The sequential figure is the chance the sequence excludes 0 by the planned end; peeking can only stop
earlier. MDE and sample size invert these exactly (bisection), so ``power(mde(...)) == target``. For
α = 0.05 and 80 % power the frequentist sample size is ≈ 15.7 σ²/δ² per variation, the "16 σ²/δ²" rule
of thumb (van Belle 2008; Kohavi et al. 2009).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

from jobs.stats.sequential import DEFAULT_TUNING_PARAMETER, sequential_halfwidth, sequential_rho
from jobs.stats.validation import check_alpha, check_positive
from xpcore.errors import ValidationError

__all__ = ["minimum_detectable_effect", "power", "sample_size_per_variation"]

PowerMethod = Literal["frequentist", "sequential"]
_NORMAL = NormalDist()


def _check_common(unit_variance: float, alpha: float, method: str) -> None:
    check_positive("unit_variance", unit_variance)
    check_alpha(alpha)
    if method not in ("frequentist", "sequential"):
        raise ValidationError(f"method must be 'frequentist' or 'sequential', got {method!r}")


def _power(effect: float, unit_variance: float, n: float, alpha: float, method: str, tuning: float) -> float:
    se = math.sqrt(2 * unit_variance / n)
    if method == "frequentist":
        threshold = _NORMAL.inv_cdf(1 - alpha / 2) * se
    else:
        n_total = 2 * n
        threshold = sequential_halfwidth(
            se * se * n_total, round(n_total), alpha, sequential_rho(alpha, tuning)
        )
    return _NORMAL.cdf((abs(effect) - threshold) / se) + _NORMAL.cdf((-abs(effect) - threshold) / se)


def power(
    effect: float,
    unit_variance: float,
    n_per_variation: int,
    *,
    alpha: float = 0.05,
    method: PowerMethod = "frequentist",
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
) -> float:
    """Probability of a significant result when the true absolute difference is ``effect``."""
    _check_common(unit_variance, alpha, method)
    if not math.isfinite(effect):
        raise ValidationError(f"effect must be finite, got {effect!r}")
    if n_per_variation < 2:
        raise ValidationError(f"n_per_variation must be >= 2, got {n_per_variation}")
    return _power(effect, unit_variance, n_per_variation, alpha, method, tuning_parameter)


def _check_target(target_power: float, alpha: float) -> None:
    if not (0 < target_power < 1) or target_power <= alpha:
        raise ValidationError(f"target power must lie between alpha and 1, got {target_power!r}")


def minimum_detectable_effect(
    unit_variance: float,
    n_per_variation: int,
    *,
    alpha: float = 0.05,
    target_power: float = 0.8,
    method: PowerMethod = "frequentist",
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
) -> float:
    """Smallest absolute difference detected with ``target_power`` at ``n_per_variation`` units per arm."""
    _check_common(unit_variance, alpha, method)
    _check_target(target_power, alpha)
    if n_per_variation < 2:
        raise ValidationError(f"n_per_variation must be >= 2, got {n_per_variation}")
    se = math.sqrt(2 * unit_variance / n_per_variation)
    low, high = 0.0, se
    while _power(high, unit_variance, n_per_variation, alpha, method, tuning_parameter) < target_power:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _power(middle, unit_variance, n_per_variation, alpha, method, tuning_parameter) < target_power:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return high


def sample_size_per_variation(
    effect: float,
    unit_variance: float,
    *,
    alpha: float = 0.05,
    target_power: float = 0.8,
    method: PowerMethod = "frequentist",
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
) -> int:
    """Smallest number of units per variation that detects ``effect`` with ``target_power``."""
    _check_common(unit_variance, alpha, method)
    _check_target(target_power, alpha)
    if not (math.isfinite(effect) and effect != 0):
        raise ValidationError(f"effect must be a finite non-zero difference, got {effect!r}")
    low, high = 1, 2
    while _power(effect, unit_variance, high, alpha, method, tuning_parameter) < target_power:
        low, high = high, high * 2
        if high > 10**15:
            raise ValidationError("the effect is too small to detect with any realistic sample size")
    while high - low > 1:
        middle = (low + high) // 2
        if _power(effect, unit_variance, middle, alpha, method, tuning_parameter) < target_power:
            low = middle
        else:
            high = middle
    return high
