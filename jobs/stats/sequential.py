"""Always-valid inference: asymptotic confidence sequences (Waudby-Smith et al. 2023), as in GrowthBook.

A confidence sequence covers the true effect at *every* sample size simultaneously with probability
≥ 1 − α, so a dashboard may be checked after every batch ("peeking") without inflating the false
positive rate. GrowthBook's gbstats uses the same construction (``SequentialTwoSidedTTest``):

    ρ         = √((−2 ln α + ln(−2 ln α + 1)) / N*)                       (tuning, N* = 5000 by default)
    halfwidth = √s² · √(2(nρ² + 1) · ln(√(nρ² + 1) / α) / (nρ)²)          (eq. 9)
    s²        = se² · n,   n = units in both arms
    p-value   = min(1, √(nρ² + 1) · exp(−ρ² n Δ² / (2 se² (nρ² + 1))))      (eq. 155, e-value inverted)

The p-value is < α exactly when the confidence sequence excludes 0. N* is the total sample size at
which the sequence is tightest; it only trades width early against width late, validity holds for any.
:func:`tuning_for` picks it: an explicit N*, else the experiment's ``planned_units`` (the sequence is
then tightest at the planned end, which is where power matters; decision 0063), else 5000.

A relative lift is tested through its absolute difference (same p-value) and its sequence is Fieller's
set at the same half-width per standard error (:mod:`jobs.stats.fieller`, decision 0062): for the true
lift r, ``D − r·u`` is a difference of means, so the asymptotic sequence covers it uniformly in n.
"""

from __future__ import annotations

import math

from jobs.stats.effects import EffectMoments, effect_moments
from jobs.stats.fieller import fieller_interval
from jobs.stats.results import Difference, EffectResult, RelativeInterval, StatsErrorCode
from jobs.stats.sufficient import Statistic
from jobs.stats.validation import check_alpha, check_positive

__all__ = [
    "DEFAULT_TUNING_PARAMETER",
    "sequential_from_moments",
    "sequential_halfwidth",
    "sequential_p_value",
    "sequential_rho",
    "sequential_test",
    "tuning_for",
]

DEFAULT_TUNING_PARAMETER = 5000.0
"""N*, GrowthBook's default ``sequential_tuning_parameter``."""


def tuning_for(tuning_parameter: float | None, planned_units: int | None) -> float:
    """N*: the one given, else the planned total units, else :data:`DEFAULT_TUNING_PARAMETER`."""
    if tuning_parameter is not None:
        return tuning_parameter
    if planned_units is not None:
        check_positive("planned_units", planned_units)
        return float(planned_units)
    return DEFAULT_TUNING_PARAMETER


def sequential_rho(alpha: float, tuning_parameter: float = DEFAULT_TUNING_PARAMETER) -> float:
    """ρ = √((−2 ln α + ln(−2 ln α + 1)) / N*)."""
    check_alpha(alpha)
    check_positive("sequential tuning parameter", tuning_parameter)
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning_parameter)


def sequential_halfwidth(s2: float, n: int, alpha: float, rho: float) -> float:
    """Half-width of the two-sided asymptotic confidence sequence (Waudby-Smith et al. 2023, eq. 9)."""
    n_rho2_plus_1 = n * rho * rho + 1
    return math.sqrt(s2) * math.sqrt(
        2 * n_rho2_plus_1 * math.log(math.sqrt(n_rho2_plus_1) / alpha) / (n * rho) ** 2
    )


def sequential_p_value(estimate: float, variance: float, n: int, rho: float) -> float:
    """Always-valid two-sided p-value: 1 / e-value, capped at 1 (Waudby-Smith et al. 2023, eq. 155)."""
    n_rho2_plus_1 = n * rho * rho + 1
    log_e_value = rho * rho * (estimate * estimate * n / variance) / (2 * n_rho2_plus_1) - 0.5 * math.log(
        n_rho2_plus_1
    )
    return min(1.0, math.exp(-log_e_value))


def sequential_from_moments(
    moments: EffectMoments,
    *,
    difference: Difference,
    alpha: float,
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
    relative_interval: RelativeInterval = "fieller",
) -> EffectResult:
    """Confidence sequence and always-valid p-value for an estimate and its variance."""
    rho = sequential_rho(alpha, tuning_parameter)
    if moments.error is not None:
        return EffectResult.failed("sequential", difference, moments.error)
    n = moments.n_total
    terms = moments.fieller
    if relative_interval == "fieller" and terms is not None:
        variance = terms.variance_difference
        if not variance > 0:
            return EffectResult.failed("sequential", difference, StatsErrorCode.zero_variance)
        low, high = fieller_interval(terms, sequential_halfwidth(float(n), n, alpha, rho))
        return EffectResult(
            method="sequential",
            difference=difference,
            estimate=moments.estimate,
            standard_error=moments.standard_error,
            ci_low=low,
            ci_high=high,
            p_value=sequential_p_value(terms.difference, variance, n, rho),
        )
    halfwidth = sequential_halfwidth(moments.variance * n, n, alpha, rho)
    return EffectResult(
        method="sequential",
        difference=difference,
        estimate=moments.estimate,
        standard_error=moments.standard_error,
        ci_low=moments.estimate - halfwidth,
        ci_high=moments.estimate + halfwidth,
        p_value=sequential_p_value(moments.estimate, moments.variance, n, rho),
    )


def sequential_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = 0.05,
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
    theta: float | None = None,
    relative_interval: RelativeInterval = "fieller",
) -> EffectResult:
    """Sequential (peeking-safe) comparison of ``treatment`` with ``control``."""
    moments = effect_moments(control, treatment, difference, theta)
    return sequential_from_moments(
        moments,
        difference=difference,
        alpha=alpha,
        tuning_parameter=tuning_parameter,
        relative_interval=relative_interval,
    )
