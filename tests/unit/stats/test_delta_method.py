"""The delta method against simulation: ratio-metric variance, relative-lift intervals, CUPED relative."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.stats import compare_variations, effect_moments, welch_t_test
from tests.unit.stats._data import binomial_tolerance, cuped_stat, mean_stat, ratio_stat

SIMULATIONS = 2000


@pytest.mark.slow
def test_ratio_variance_matches_the_spread_of_the_ratio_over_simulations() -> None:
    """Clicks per session: sessions d ~ 1 + Poisson(3), clicks m ~ Binomial(d, 0.3), 2,000 users.
    Across 2,000 simulated samples the variance of Σm/Σd should match the delta-method variance."""
    rng = np.random.default_rng(7)
    sessions = rng.poisson(3, (SIMULATIONS, 2000)) + 1.0
    clicks = rng.binomial(sessions.astype(int), 0.3).astype(float)
    ratios = clicks.sum(axis=1) / sessions.sum(axis=1)
    # The delta-method variance of one arm is Var(Δ) of an absolute difference minus the other arm's share.
    reference = ratio_stat(clicks[0], sessions[0])
    delta_variances = [
        effect_moments(reference, ratio_stat(clicks[i], sessions[i]), "absolute").variance_treatment
        for i in range(SIMULATIONS)
    ]
    ratio = float(np.mean(delta_variances) / np.var(ratios, ddof=1))
    print(f"\nratio metric: delta-method variance / simulated variance = {ratio:.4f}")
    # A variance estimated from 2,000 draws has ±3.2 % relative standard error: allow ±10 %.
    assert ratio == pytest.approx(1.0, abs=0.10)


def test_ratio_variance_matches_a_bootstrap() -> None:
    """One sample of 3,000 users: the delta-method standard error of Σm/Σd vs 2,000 bootstrap resamples."""
    rng = np.random.default_rng(8)
    sessions = rng.poisson(2, 3000) + 1.0
    revenue = rng.gamma(2.0, 5.0, 3000) * rng.binomial(1, 0.4, 3000) * sessions
    index = rng.integers(0, 3000, (2000, 3000))
    bootstrap = revenue[index].sum(axis=1) / sessions[index].sum(axis=1)
    reference = ratio_stat(revenue, sessions)
    variance = effect_moments(reference, reference, "absolute").variance_treatment
    assert np.sqrt(variance) == pytest.approx(np.std(bootstrap, ddof=1), rel=0.06)


@pytest.mark.slow
def test_relative_lift_interval_covers_the_true_lift_at_the_nominal_rate() -> None:
    """Skewed (exponential) revenue, control mean 1.0, treatment 1.1: true lift 10 %, 1,000 users per arm.
    The 95 % delta-method interval for (μ_b − μ_a)/μ_a should cover 0.10 in ≈ 95 % of 2,000 runs."""
    rng = np.random.default_rng(9)
    control = rng.exponential(1.0, (SIMULATIONS, 1000))
    treatment = rng.exponential(1.1, (SIMULATIONS, 1000))
    covered = 0
    for i in range(SIMULATIONS):
        result = welch_t_test(
            mean_stat(control[i]), mean_stat(treatment[i]), difference="relative", alpha=0.05
        )
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= 0.10 <= result.ci_high
    coverage = covered / SIMULATIONS
    print(f"\nrelative lift 95% interval coverage: {coverage:.4f}")
    # ±3 binomial standard deviations of a coverage estimated from 2,000 runs: ±0.0146
    assert abs(coverage - 0.95) <= binomial_tolerance(0.95, SIMULATIONS)


@pytest.mark.slow
def test_cuped_relative_interval_covers_the_true_lift() -> None:
    """CUPED with a relative difference: 5 % true lift, covariate correlated with the metric."""
    rng = np.random.default_rng(10)
    n = 800
    covariate = rng.gamma(4.0, 1.0, (SIMULATIONS, 2, n))
    metric = 1.0 + 0.8 * covariate + rng.normal(0, 1.0, (SIMULATIONS, 2, n))
    metric[:, 1] *= 1.05
    true_lift = 0.05
    covered, widths_cuped, widths_plain = 0, [], []
    for i in range(SIMULATIONS):
        cuped = compare_variations(
            [cuped_stat(metric[i, 0], covariate[i, 0]), cuped_stat(metric[i, 1], covariate[i, 1])],
            method="frequentist",
            difference="relative",
        )[0]
        plain = welch_t_test(mean_stat(metric[i, 0]), mean_stat(metric[i, 1]), difference="relative")
        assert cuped.ci_low is not None and cuped.ci_high is not None
        assert plain.ci_low is not None and plain.ci_high is not None
        covered += cuped.ci_low <= true_lift <= cuped.ci_high
        widths_cuped.append(cuped.ci_high - cuped.ci_low)
        widths_plain.append(plain.ci_high - plain.ci_low)
    coverage = covered / SIMULATIONS
    print(
        f"\nCUPED relative 95% coverage {coverage:.4f}, "
        f"width vs plain {np.mean(widths_cuped) / np.mean(widths_plain):.3f}"
    )
    assert abs(coverage - 0.95) <= binomial_tolerance(0.95, SIMULATIONS)
    assert np.mean(widths_cuped) < 0.8 * np.mean(widths_plain)
