"""Sufficient statistics add up, match numpy, and reject sums no data could produce."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.stats import CupedStatistic, ProportionStatistic, RatioStatistic, SampleMeanStatistic, ValueSums
from jobs.stats.sufficient import pooled_theta
from tests.unit.stats._data import cuped_stat, mean_stat, ratio_stat
from xpcore.errors import ValidationError

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_partial_aggregates_add_up_to_the_aggregate_of_all_rows(
    left: list[float], right: list[float]
) -> None:
    combined = mean_stat(np.array(left)) + mean_stat(np.array(right))
    whole = mean_stat(np.array(left + right))
    assert combined.n == whole.n
    assert combined.sum == pytest.approx(whole.sum, abs=1e-6)
    assert combined.sum_squares == pytest.approx(whole.sum_squares, rel=1e-9, abs=1e-6)


def test_sample_variance_uses_n_minus_one_like_numpy() -> None:
    rng = np.random.default_rng(1)
    data = rng.exponential(2.0, 501)
    stat = mean_stat(data)
    assert stat.mean == pytest.approx(data.mean())
    assert stat.variance == pytest.approx(data.var(ddof=1), rel=1e-10)


def test_proportion_variance_is_the_sample_variance_of_the_zero_one_values() -> None:
    data = np.array([1] * 37 + [0] * 263, dtype=float)
    stat = ProportionStatistic(300, 37)
    assert stat.variance == pytest.approx(data.var(ddof=1))
    assert (stat + ProportionStatistic(10, 3)) == ProportionStatistic(310, 40)


def test_ratio_and_cuped_statistics_add_up_and_give_the_covariance() -> None:
    rng = np.random.default_rng(2)
    d = rng.poisson(3, 400) + 1.0
    m = rng.binomial(d.astype(int), 0.3).astype(float)
    whole = ratio_stat(m, d)
    parts = ratio_stat(m[:150], d[:150]) + ratio_stat(m[150:], d[150:])
    assert parts.n == whole.n and parts.cross_sum == pytest.approx(whole.cross_sum)
    assert whole.mean == pytest.approx(m.sum() / d.sum())
    assert whole.covariance == pytest.approx(np.cov(m, d, ddof=1)[0, 1])
    cuped = cuped_stat(m[:200], d[:200]) + cuped_stat(m[200:], d[200:])
    assert cuped.n == 400 and cuped.metric.sum == pytest.approx(m.sum())


def test_pooled_theta_is_the_regression_slope_over_all_variations() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(10, 2, 3000)
    y = 0.8 * x + rng.normal(0, 1, 3000)
    arms = [
        cuped_stat(y[:1000], x[:1000]),
        cuped_stat(y[1000:2000], x[1000:2000]),
        cuped_stat(y[2000:], x[2000:]),
    ]
    slope = np.cov(y, x, ddof=1)[0, 1] / x.var(ddof=1)
    assert pooled_theta(arms) == pytest.approx(slope, rel=1e-9)
    constant = CupedStatistic(3, ValueSums(3, 5), ValueSums(6, 12), 6)
    assert pooled_theta([constant]) == 0.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SampleMeanStatistic(-1, 0, 0), "n must be >= 0"),
        (lambda: SampleMeanStatistic(10, 10.0, 5.0), "smaller than sum²/n"),
        (lambda: SampleMeanStatistic(0, 1.0, 1.0), "n is 0"),
        (lambda: SampleMeanStatistic(3, math.nan, 1.0), "finite"),
        (lambda: ProportionStatistic(10, 11), "between 0 and n"),
        (lambda: RatioStatistic(2, ValueSums(1, 1), ValueSums(1, 1), 5.0), "cross_sum is inconsistent"),
        (lambda: CupedStatistic(2, ValueSums(2, 2), ValueSums(2, 4), -9.0), "cross_sum is inconsistent"),
    ],
)
def test_impossible_sums_are_validation_errors(build: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()  # type: ignore[operator]


def test_constant_values_have_exactly_zero_variance_despite_float_noise() -> None:
    data = np.full(1000, 0.1)
    assert mean_stat(data).variance == 0.0
