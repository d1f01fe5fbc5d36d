"""Fixed-horizon frequentist test: Welch's unequal-variance t-test (Welch 1947) on sufficient statistics."""

from __future__ import annotations

import math

from jobs.stats.effects import EffectMoments, effect_moments
from jobs.stats.results import Difference, EffectResult
from jobs.stats.sufficient import Statistic
from jobs.stats.validation import check_alpha

__all__ = ["welch_from_moments", "welch_t_test"]


def welch_from_moments(moments: EffectMoments, *, difference: Difference, alpha: float) -> EffectResult:
    """Two-sided p-value ``2·T_ν(−|Δ/se|)`` and interval ``Δ ± t_{ν, 1−α/2}·se``, ν = Welch–Satterthwaite."""
    from scipy import special

    check_alpha(alpha)
    if moments.error is not None:
        return EffectResult.failed("frequentist", difference, moments.error)
    se = moments.standard_error
    df = moments.degrees_of_freedom
    t_statistic = moments.estimate / se
    if math.isinf(df):  # one arm carries no variance at all: the normal limit
        p_value = float(special.ndtr(-abs(t_statistic))) * 2
        quantile = float(special.ndtri(1 - alpha / 2))
    else:
        p_value = float(special.stdtr(df, -abs(t_statistic))) * 2
        quantile = float(special.stdtrit(df, 1 - alpha / 2))
    half_width = quantile * se
    return EffectResult(
        method="frequentist",
        difference=difference,
        estimate=moments.estimate,
        standard_error=se,
        ci_low=moments.estimate - half_width,
        ci_high=moments.estimate + half_width,
        p_value=min(1.0, p_value),
    )


def welch_t_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = 0.05,
    theta: float | None = None,
) -> EffectResult:
    """Welch's t-test of ``treatment`` against ``control``; relative differences use the delta method."""
    moments = effect_moments(control, treatment, difference, theta)
    return welch_from_moments(moments, difference=difference, alpha=alpha)
