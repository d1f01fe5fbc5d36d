"""Regression adjustment (CUPED++): several covariates and strata, against numpy's least squares and 1 − R².

The reference is an ordinary least-squares fit of y on (1, treatment, covariates, stratum dummies) over
the raw rows (numpy.linalg.lstsq), an implementation path independent of the sufficient statistics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jobs.stats import CupedStatistic, ValueSums, compare_variations
from jobs.stats.regression_adjustment import AdjustedStatistic, pooled_coefficients, variance_reduction
from xpcore.errors import ValidationError

COUNTRIES = np.array([0.5, 0.3, 0.2])
COUNTRY_EFFECT = np.array([0.0, 1.5, -1.0])
DEVICE_EFFECT = np.array([0.0, 0.8])


def _units(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """y and the regressors (pre_y, pre_other, country dummies for levels 1..2, device dummy)."""
    country = rng.choice(3, size=n, p=COUNTRIES)
    device = rng.integers(0, 2, size=n)
    pre_y = rng.normal(10, 2, n)
    pre_other = rng.normal(0, 1, n)
    noise = rng.normal(0, 2, n)
    y = 2 + 0.8 * pre_y + 0.5 * pre_other + COUNTRY_EFFECT[country] + DEVICE_EFFECT[device] + noise + lift
    x = np.column_stack([pre_y, pre_other, country == 1, country == 2, device == 1]).astype(float)
    return y, x


def _statistic(y: np.ndarray, x: np.ndarray) -> AdjustedStatistic:
    return AdjustedStatistic(
        len(y),
        float(y.sum()),
        float((y * y).sum()),
        tuple(float(v) for v in x.sum(axis=0)),
        tuple(tuple(float(v) for v in row) for row in x.T @ x),
        tuple(float(v) for v in x.T @ y),
    )


# R² of y on the regressors within an arm, from the model above: Var(signal) / (Var(signal) + 4)
_VAR_SIGNAL = (
    0.8**2 * 4
    + 0.5**2
    + float(COUNTRIES @ COUNTRY_EFFECT**2 - (COUNTRIES @ COUNTRY_EFFECT) ** 2)
    + DEVICE_EFFECT[1] ** 2 / 4
)
THEORETICAL_R2 = _VAR_SIGNAL / (_VAR_SIGNAL + 4.0)


def test_point_estimate_and_variance_match_numpy_least_squares() -> None:
    rng = np.random.default_rng(16)
    y_a, x_a = _units(rng, 3000, 0.0)
    y_b, x_b = _units(rng, 2500, 0.3)
    statistics = [_statistic(y_a, x_a), _statistic(y_b, x_b)]
    (result,) = compare_variations(statistics, method="frequentist", difference="absolute")

    treated = np.r_[np.zeros(len(y_a)), np.ones(len(y_b))]
    design = np.column_stack([np.ones(len(treated)), treated, np.vstack([x_a, x_b])])
    y = np.r_[y_a, y_b]
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert result.estimate == pytest.approx(coefficients[1], rel=1e-9, abs=1e-9)
    assert pooled_coefficients(statistics) == pytest.approx(tuple(coefficients[2:]), rel=1e-8)

    # Variance: each arm's residual variance over its units (the estimator's delta-method form) ...
    residuals = y - design @ coefficients
    arm_a, arm_b = residuals[: len(y_a)], residuals[len(y_a) :]
    expected = arm_a.var(ddof=1) / len(y_a) + arm_b.var(ddof=1) / len(y_b)
    assert result.standard_error == pytest.approx(math.sqrt(expected), rel=1e-8)
    # ... and, with equal error variances in both arms, the classical OLS standard error of the
    # treatment coefficient (σ̂²·(XᵀX)⁻¹) is the same to within a few per cent.
    sigma2 = float(residuals @ residuals) / (len(y) - design.shape[1])
    ols_se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    assert result.standard_error == pytest.approx(ols_se, rel=0.03)


def test_full_dummy_sets_are_harmless_collinearity() -> None:
    """Every level of a stratum as a regressor (collinear with the intercept) gives the same answer."""
    rng = np.random.default_rng(7)
    arms = [_units(rng, 800, lift) for lift in (0.0, 0.2, 0.5)]
    dropped = [_statistic(y, x) for y, x in arms]
    full = [_statistic(y, np.column_stack([x, 1 - x[:, 2] - x[:, 3], 1 - x[:, 4]])) for y, x in arms]
    for kind in ("absolute", "relative"):
        plain = compare_variations(dropped, method="frequentist", difference=kind)  # type: ignore[arg-type]
        collinear = compare_variations(full, method="frequentist", difference=kind)  # type: ignore[arg-type]
        for a, b in zip(plain, collinear, strict=True):
            assert b.estimate == pytest.approx(a.estimate, rel=1e-7)
            assert b.standard_error == pytest.approx(a.standard_error, rel=1e-7)


def test_sums_add_up_across_parts() -> None:
    rng = np.random.default_rng(3)
    y, x = _units(rng, 1000, 0.0)
    whole = _statistic(y, x)
    parts = _statistic(y[:300], x[:300]) + _statistic(y[300:], x[300:])
    assert parts.n == whole.n
    assert parts.sum == pytest.approx(whole.sum)
    assert np.allclose(parts.covariate_crosses, whole.covariate_crosses)
    assert np.allclose(parts.metric_crosses, whole.metric_crosses)


def test_one_covariate_is_cuped() -> None:
    """With the metric's own pre-period value only, the adjustment is CUPED (θ within arms vs overall)."""
    rng = np.random.default_rng(11)
    arms = [_units(rng, 5000, lift) for lift in (0.0, 0.4)]
    adjusted = [_statistic(y, x[:, :1]) for y, x in arms]
    cuped = [
        CupedStatistic(
            len(y),
            ValueSums(float(y.sum()), float(y @ y)),
            ValueSums(float(x[:, 0].sum()), float(x[:, 0] @ x[:, 0])),
            float(y @ x[:, 0]),
        )
        for y, x in arms
    ]
    (a,) = compare_variations(adjusted, method="frequentist", difference="absolute")
    (c,) = compare_variations(cuped, method="frequentist", difference="absolute")
    assert a.estimate == pytest.approx(c.estimate, abs=0.01 * c.standard_error)
    assert a.standard_error == pytest.approx(c.standard_error, rel=1e-3)


def test_seeded_simulation_variance_reduction_is_one_minus_r_squared() -> None:
    """A/A, 600 runs: the adjusted difference's variance is (1 − R²) of the plain one; 95 % coverage."""
    rng = np.random.default_rng(2013)
    runs, n = 600, 400
    adjusted_estimates, plain_estimates, reported, covered = [], [], [], 0
    for _ in range(runs):
        (y_a, x_a), (y_b, x_b) = _units(rng, n, 0.0), _units(rng, n, 0.0)
        statistics = [_statistic(y_a, x_a), _statistic(y_b, x_b)]
        (result,) = compare_variations(statistics, method="frequentist", difference="absolute")
        adjusted_estimates.append(result.estimate)
        plain_estimates.append(y_b.mean() - y_a.mean())
        reported.append(variance_reduction(statistics))
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= 0.0 <= result.ci_high
    ratio = np.var(adjusted_estimates) / np.var(plain_estimates)
    # The ratio of two variances over 600 runs: sd ≈ √(2/600)·ratio ≈ 6 % of it.
    assert ratio == pytest.approx(1 - THEORETICAL_R2, rel=0.2)
    assert float(np.mean(reported)) == pytest.approx(THEORETICAL_R2, abs=0.02)
    assert abs(covered / runs - 0.95) < 4 * math.sqrt(0.95 * 0.05 / runs)


def test_inconsistent_sums_are_refused() -> None:
    with pytest.raises(ValidationError, match="positive semi-definite"):
        AdjustedStatistic(10, 10.0, 20.0, (5.0,), ((5.0,),), (100.0,))  # |Σ(y−ȳ)(x−x̄)| too large
    with pytest.raises(ValidationError, match="2 covariate sums"):
        AdjustedStatistic(10, 10.0, 20.0, (5.0, 1.0), ((5.0, 1.0), (1.0, 1.0)), (5.0,))
    with pytest.raises(ValidationError, match="symmetric"):
        AdjustedStatistic(10, 10.0, 20.0, (5.0, 1.0), ((5.0, 1.0), (2.0, 1.0)), (5.0, 1.0))
    with pytest.raises(ValidationError, match="finite"):
        AdjustedStatistic(10, 10.0, 20.0, (math.nan,), ((5.0,),), (5.0,))
    with pytest.raises(ValidationError, match="at least one covariate"):
        AdjustedStatistic(10, 10.0, 20.0, (), (), ())
