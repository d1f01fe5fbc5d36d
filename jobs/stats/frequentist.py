"""Fixed-horizon frequentist test: Welch's unequal-variance t-test (Welch 1947) on sufficient statistics.

A relative lift is tested through its absolute difference (same t, same ν, same p-value) and its
interval is Fieller's at the same Student quantile (:mod:`jobs.stats.fieller`, decision 0062);
``relative_interval="delta"`` gives the former delta-method interval (gbstats' figures).
"""

from __future__ import annotations

import math

from jobs.stats.effects import EffectMoments, effect_moments, welch_satterthwaite_df
from jobs.stats.fieller import fieller_interval
from jobs.stats.results import Difference, EffectResult, RelativeInterval, StatsErrorCode
from jobs.stats.sufficient import Statistic
from jobs.stats.validation import check_alpha

__all__ = ["welch_from_moments", "welch_t_test"]


def _p_value_and_quantile(t_statistic: float, df: float, alpha: float) -> tuple[float, float]:
    from scipy import special

    if math.isinf(df):  # one arm carries no variance at all: the normal limit
        return float(special.ndtr(-abs(t_statistic))) * 2, float(special.ndtri(1 - alpha / 2))
    return float(special.stdtr(df, -abs(t_statistic))) * 2, float(special.stdtrit(df, 1 - alpha / 2))


def welch_from_moments(
    moments: EffectMoments,
    *,
    difference: Difference,
    alpha: float,
    relative_interval: RelativeInterval = "fieller",
) -> EffectResult:
    """Two-sided p-value ``2·T_ν(−|Δ/se|)`` and interval ``Δ ± t_{ν, 1−α/2}·se``, ν = Welch–Satterthwaite.

    Relative lifts (by default): the p-value of the absolute difference and Fieller's interval.
    """
    check_alpha(alpha)
    if moments.error is not None:
        return EffectResult.failed("frequentist", difference, moments.error)
    se = moments.standard_error
    terms = moments.fieller
    if relative_interval == "fieller" and terms is not None:
        variance = terms.variance_difference
        if not variance > 0:
            return EffectResult.failed("frequentist", difference, StatsErrorCode.zero_variance)
        df = welch_satterthwaite_df(
            terms.variance_control, moments.n_control, terms.variance_treatment, moments.n_treatment
        )
        p_value, quantile = _p_value_and_quantile(terms.difference / math.sqrt(variance), df, alpha)
        low, high = fieller_interval(terms, quantile)
        return EffectResult(
            method="frequentist",
            difference=difference,
            estimate=moments.estimate,
            standard_error=se,
            ci_low=low,
            ci_high=high,
            p_value=min(1.0, p_value),
        )
    p_value, quantile = _p_value_and_quantile(moments.estimate / se, moments.degrees_of_freedom, alpha)
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
    relative_interval: RelativeInterval = "fieller",
) -> EffectResult:
    """Welch's t-test of ``treatment`` against ``control``; relative lifts get Fieller's interval."""
    moments = effect_moments(control, treatment, difference, theta)
    return welch_from_moments(
        moments, difference=difference, alpha=alpha, relative_interval=relative_interval
    )
