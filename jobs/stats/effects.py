"""Point estimate and variance of a difference between two variations, by the delta method.

Each variation is reduced to a small vector of per-unit means β (``ȳ``; ``(m̄, d̄)`` for a ratio;
``(ȳ, x̄)`` for CUPED) with its sample covariance Σ (divisor n − 1). The arm's value is a smooth
function f(β): ``ȳ``, ``m̄ / d̄`` or ``ȳ − θ x̄``. The difference is

    absolute: Δ = f(β_b) − f(β_a)
    relative: Δ = (f(β_b) − f(β_a)) / u(β_a),   u = the unadjusted control value (ȳ_a, or m̄_a / d̄_a)

and its variance is the first-order (delta-method) ``Σ_arm ∇Δ_armᵀ Σ_arm ∇Δ_arm / n_arm``. The two
per-arm terms also give Welch–Satterthwaite degrees of freedom. For a mean metric and an absolute
difference this is exactly Welch's ``s_a²/n_a + s_b²/n_b``.

A relative difference also carries :class:`FiellerTerms`: the moments of ``D − r·u`` as a function of r
(D = f_b − f_a, u = u_a), from which :mod:`jobs.stats.fieller` inverts a test of the difference into a
calibrated interval for the lift (decision 0062). The delta-method variance of Δ stays the reported
standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.stats.regression_adjustment import AdjustedStatistic, pooled_coefficients, unit_covariance
from jobs.stats.results import Difference, StatsErrorCode
from jobs.stats.sufficient import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
    centered_sum_of_squares,
    pooled_theta,
)
from xpcore.errors import ValidationError

__all__ = ["EffectMoments", "FiellerTerms", "effect_moments", "welch_satterthwaite_df"]

Vector = tuple[float, ...]
Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class _ArmDelta:
    """One arm, linearised: its value, its unadjusted value, their gradients, per-unit covariance."""

    n: int
    value: float
    baseline: float
    value_gradient: Vector
    baseline_gradient: Vector
    unit_covariance: Matrix


@dataclass(frozen=True, slots=True)
class FiellerTerms:
    """A relative lift r = D / u through its linear form ``T(r) = D − r·u`` (Fieller 1954).

    ``Var T(r) = variance_difference + 2r·covariance + r²·variance_baseline`` (delta method in the
    per-unit means, like every other variance here); at r = 0 it is the absolute difference's variance.
    """

    difference: float
    """D = f_b − f_a, the absolute difference."""
    baseline: float
    """u = the unadjusted control value the lift divides by."""
    variance_control: float
    """The control arm's share of Var(D)."""
    variance_treatment: float
    """The treatment arm's share of Var(D)."""
    covariance: float
    """Cov(f_a, u_a) (control arm only; D's treatment part is independent of u)."""
    variance_baseline: float
    """Var(u_a)."""

    @property
    def variance_difference(self) -> float:
        """Var(D): the absolute difference's variance."""
        return self.variance_control + self.variance_treatment


@dataclass(frozen=True, slots=True)
class EffectMoments:
    """Estimate and variance of a difference, or the reason there is none."""

    estimate: float
    """Δ (absolute or relative)."""
    variance: float
    """Var(Δ) = variance_control + variance_treatment."""
    variance_control: float
    """The control arm's contribution to Var(Δ)."""
    variance_treatment: float
    """The treatment arm's contribution to Var(Δ)."""
    n_control: int
    """Units in control."""
    n_treatment: int
    """Units in treatment."""
    error: StatsErrorCode | None = None
    """Why the numbers are meaningless, or None."""
    fieller: FiellerTerms | None = None
    """Relative differences: the terms of Fieller's interval (None for absolute ones)."""

    @property
    def standard_error(self) -> float:
        """√Var(Δ)."""
        return math.sqrt(self.variance)

    @property
    def n_total(self) -> int:
        """Units in both arms (the ``n`` of a confidence sequence)."""
        return self.n_control + self.n_treatment

    @property
    def degrees_of_freedom(self) -> float:
        """Welch–Satterthwaite degrees of freedom of Δ."""
        return welch_satterthwaite_df(
            self.variance_control, self.n_control, self.variance_treatment, self.n_treatment
        )


def welch_satterthwaite_df(v_a: float, n_a: int, v_b: float, n_b: int) -> float:
    """``(v_a + v_b)² / (v_a²/(n_a − 1) + v_b²/(n_b − 1))``, v = each arm's share of Var(Δ) (Welch 1947)."""
    denominator = v_a * v_a / (n_a - 1) + v_b * v_b / (n_b - 1)
    if denominator <= 0:
        return math.inf
    return (v_a + v_b) ** 2 / denominator


def _failed(error: StatsErrorCode, n_a: int, n_b: int) -> EffectMoments:
    return EffectMoments(math.nan, math.nan, math.nan, math.nan, n_a, n_b, error)


def _arm(statistic: Statistic, theta: float | tuple[float, ...]) -> _ArmDelta | StatsErrorCode:
    n = statistic.n
    if n == 0:
        return StatsErrorCode.empty_variation
    if n < 2:
        return StatsErrorCode.insufficient_data
    if isinstance(statistic, AdjustedStatistic):
        return _adjusted_arm(statistic, theta if isinstance(theta, tuple) else (theta,))
    assert isinstance(theta, float | int)
    if isinstance(statistic, SampleMeanStatistic | ProportionStatistic):
        mean = statistic.mean
        return _ArmDelta(n, mean, mean, (1.0,), (1.0,), ((statistic.variance,),))
    if isinstance(statistic, RatioStatistic):
        m_bar = statistic.numerator.sum / n
        d_bar = statistic.denominator.sum / n
        if d_bar == 0:
            return StatsErrorCode.zero_denominator
        var_m = centered_sum_of_squares(n, statistic.numerator.sum, statistic.numerator.sum_squares) / (n - 1)
        var_d = centered_sum_of_squares(n, statistic.denominator.sum, statistic.denominator.sum_squares) / (
            n - 1
        )
        cov = statistic.covariance
        ratio = m_bar / d_bar
        gradient = (1.0 / d_bar, -m_bar / (d_bar * d_bar))
        return _ArmDelta(n, ratio, ratio, gradient, gradient, ((var_m, cov), (cov, var_d)))
    if isinstance(statistic, CupedStatistic):
        y_bar = statistic.metric.sum / n
        x_bar = statistic.covariate.sum / n
        var_y = centered_sum_of_squares(n, statistic.metric.sum, statistic.metric.sum_squares) / (n - 1)
        var_x = centered_sum_of_squares(n, statistic.covariate.sum, statistic.covariate.sum_squares) / (n - 1)
        cov = (statistic.cross_sum - statistic.metric.sum * statistic.covariate.sum / n) / (n - 1)
        return _ArmDelta(
            n, y_bar - theta * x_bar, y_bar, (1.0, -theta), (1.0, 0.0), ((var_y, cov), (cov, var_x))
        )
    raise ValidationError(f"unsupported statistic type {type(statistic).__name__}")


def _adjusted_arm(statistic: AdjustedStatistic, beta: tuple[float, ...]) -> _ArmDelta:
    """Regression adjustment: value ``ȳ − βᵀx̄`` over the means (ȳ, x̄_1 … x̄_k)."""
    if len(beta) != statistic.covariate_count:
        raise ValidationError(f"{len(beta)} coefficients for {statistic.covariate_count} covariates")
    n = statistic.n
    y_bar = statistic.sum / n
    x_bar = [value / n for value in statistic.covariate_sums]
    value = y_bar - sum(b * x for b, x in zip(beta, x_bar, strict=True))
    zeros = (0.0,) * len(beta)
    return _ArmDelta(n, value, y_bar, (1.0, *(-b for b in beta)), (1.0, *zeros), unit_covariance(statistic))


def _quadratic_form(gradient: Vector, matrix: Matrix) -> float:
    return sum(
        gradient[i] * gradient[j] * matrix[i][j] for i in range(len(gradient)) for j in range(len(gradient))
    )


def effect_moments(
    control: Statistic,
    treatment: Statistic,
    difference: Difference,
    theta: float | tuple[float, ...] | None = None,
) -> EffectMoments:
    """Δ and Var(Δ) for ``treatment`` vs ``control``; degenerate inputs give a coded ``error``.

    ``theta`` is CUPED's coefficient (a regression adjustment's β: one per covariate); by default it is
    pooled over the two arms (pass the value pooled over every variation of the experiment, as
    :func:`jobs.stats.analysis.compare_variations` does).
    """
    if type(control) is not type(treatment):
        raise ValidationError(
            f"control and treatment must be the same kind of statistic "
            f"({type(control).__name__} vs {type(treatment).__name__})"
        )
    if difference not in ("absolute", "relative"):
        raise ValidationError(f"difference must be 'absolute' or 'relative', got {difference!r}")
    n_a, n_b = control.n, treatment.n
    if isinstance(control, CupedStatistic) and isinstance(treatment, CupedStatistic) and theta is None:
        theta = pooled_theta([control, treatment])
    if isinstance(control, AdjustedStatistic) and isinstance(treatment, AdjustedStatistic) and theta is None:
        theta = pooled_coefficients([control, treatment])
    arm_a = _arm(control, theta or 0.0)
    arm_b = _arm(treatment, theta or 0.0)
    for arm in (arm_a, arm_b):
        if arm is StatsErrorCode.empty_variation:
            return _failed(StatsErrorCode.empty_variation, n_a, n_b)
    for arm in (arm_a, arm_b):
        if isinstance(arm, StatsErrorCode):
            return _failed(arm, n_a, n_b)
    assert isinstance(arm_a, _ArmDelta) and isinstance(arm_b, _ArmDelta)

    delta = arm_b.value - arm_a.value
    fieller = None
    if difference == "absolute":
        gradient_b = arm_b.value_gradient
        gradient_a = tuple(-g for g in arm_a.value_gradient)
        estimate = delta
    else:
        baseline = arm_a.baseline
        if baseline == 0:
            return _failed(StatsErrorCode.zero_control_mean, n_a, n_b)
        gradient_b = tuple(g / baseline for g in arm_b.value_gradient)
        gradient_a = tuple(
            -g / baseline - delta / (baseline * baseline) * h
            for g, h in zip(arm_a.value_gradient, arm_a.baseline_gradient, strict=True)
        )
        estimate = delta / baseline
        fieller = _fieller_terms(arm_a, arm_b, delta)
    variance_a = max(0.0, _quadratic_form(gradient_a, arm_a.unit_covariance) / n_a)
    variance_b = max(0.0, _quadratic_form(gradient_b, arm_b.unit_covariance) / n_b)
    variance = variance_a + variance_b
    if not variance > 0 or not math.isfinite(variance):
        return _failed(StatsErrorCode.zero_variance, n_a, n_b)
    return EffectMoments(estimate, variance, variance_a, variance_b, n_a, n_b, fieller=fieller)


def _bilinear_form(left: Vector, matrix: Matrix, right: Vector) -> float:
    return sum(left[i] * right[j] * matrix[i][j] for i in range(len(left)) for j in range(len(right)))


def _fieller_terms(arm_a: _ArmDelta, arm_b: _ArmDelta, delta: float) -> FiellerTerms:
    covariance_a, n_a = arm_a.unit_covariance, arm_a.n
    return FiellerTerms(
        difference=delta,
        baseline=arm_a.baseline,
        variance_control=max(0.0, _quadratic_form(arm_a.value_gradient, covariance_a) / n_a),
        variance_treatment=max(0.0, _quadratic_form(arm_b.value_gradient, arm_b.unit_covariance) / arm_b.n),
        covariance=_bilinear_form(arm_a.value_gradient, covariance_a, arm_a.baseline_gradient) / n_a,
        variance_baseline=max(0.0, _quadratic_form(arm_a.baseline_gradient, covariance_a) / n_a),
    )
