"""Bayesian results against Monte Carlo draws from independently derived posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.stats import GaussianPrior, ProportionStatistic, gaussian_bayesian_test
from jobs.stats.bayesian import expected_loss
from tests.unit.stats._data import mean_stat

DRAWS = 400_000


@pytest.mark.parametrize(
    ("conversions_a", "conversions_b"), [(500, 540), (500, 500), (500, 470), (1000, 1060)]
)
def test_chance_to_win_matches_beta_posterior_monte_carlo(conversions_a: int, conversions_b: int) -> None:
    """Binomial arms with uniform priors have Beta(1 + c, 1 + n − c) posteriors; P(p_b > p_a) from draws
    must match our Gaussian approximation of the difference to within Monte Carlo and approximation
    error (±0.01)."""
    n = 5000
    rng = np.random.default_rng(conversions_a * 7 + conversions_b)
    p_a = rng.beta(1 + conversions_a, 1 + n - conversions_a, DRAWS)
    p_b = rng.beta(1 + conversions_b, 1 + n - conversions_b, DRAWS)
    a, b = ProportionStatistic(n, conversions_a), ProportionStatistic(n, conversions_b)
    absolute = gaussian_bayesian_test(a, b, difference="absolute")
    relative = gaussian_bayesian_test(a, b, difference="relative")
    assert absolute.chance_to_win == pytest.approx(np.mean(p_b > p_a), abs=0.01)
    assert relative.chance_to_win == pytest.approx(np.mean(p_b > p_a), abs=0.01)
    # The 95 % credible interval holds ≈ 95 % of the posterior mass of the lift. (Its ends sit ~0.007 to the
    # left of the draws' quantiles: the exact ratio posterior is right-skewed, the delta method symmetric.)
    lift = (p_b - p_a) / p_a
    assert relative.ci_low is not None and relative.ci_high is not None
    inside = np.mean((lift >= relative.ci_low) & (lift <= relative.ci_high))
    assert inside == pytest.approx(0.95, abs=0.01)


def test_relative_lift_of_a_mean_metric_matches_posterior_draws_of_the_two_means() -> None:
    """Flat-prior posteriors of two means are ≈ N(ȳ, s²/n); the lift's chance to win and risk from draws."""
    rng = np.random.default_rng(11)
    control, treatment = rng.gamma(2.0, 5.0, 3000), rng.gamma(2.0, 5.2, 3000)
    a, b = mean_stat(control), mean_stat(treatment)
    mu_a = rng.normal(a.mean, np.sqrt(a.variance / a.n), DRAWS)
    mu_b = rng.normal(b.mean, np.sqrt(b.variance / b.n), DRAWS)
    lift = (mu_b - mu_a) / mu_a
    result = gaussian_bayesian_test(a, b, difference="relative")
    assert result.chance_to_win == pytest.approx(np.mean(lift > 0), abs=0.01)
    assert result.risk == pytest.approx(np.mean(np.maximum(-lift, 0)), rel=0.05, abs=1e-4)


def test_expected_loss_closed_form_matches_monte_carlo() -> None:
    rng = np.random.default_rng(12)
    for mean, sd in [(0.0, 1.0), (0.5, 1.0), (-0.3, 0.2), (2.0, 0.5)]:
        draws = rng.normal(mean, sd, DRAWS)
        assert expected_loss(mean, sd) == pytest.approx(np.mean(np.maximum(-draws, 0)), rel=0.02, abs=2e-4)


def test_lower_is_better_flips_chance_to_win_and_risk() -> None:
    a, b = ProportionStatistic(4000, 400), ProportionStatistic(4000, 440)
    up = gaussian_bayesian_test(a, b, difference="absolute")
    down = gaussian_bayesian_test(a, b, difference="absolute", higher_is_better=False)
    assert up.chance_to_win is not None and down.chance_to_win is not None
    assert up.chance_to_win + down.chance_to_win == pytest.approx(1.0)
    assert up.risk is not None and down.risk is not None and down.risk > up.risk


def test_proper_prior_shrinks_towards_its_mean_by_precision_weighting() -> None:
    a, b = ProportionStatistic(1000, 100), ProportionStatistic(1000, 120)
    flat = gaussian_bayesian_test(a, b, difference="relative")
    assert flat.estimate is not None and flat.standard_error is not None
    prior = GaussianPrior(mean=0.0, variance=flat.standard_error**2)  # as informative as the data
    shrunk = gaussian_bayesian_test(a, b, difference="relative", prior=prior)
    assert shrunk.estimate == pytest.approx(flat.estimate / 2)
    assert shrunk.standard_error == pytest.approx(flat.standard_error / np.sqrt(2))
