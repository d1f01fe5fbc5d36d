"""Quantile metrics: reference checks (gbstats' formulas, asymptotic theory, a seeded bootstrap) and seeded
A/A simulations, per unit and per event (decision 0083).

The figures quoted in docs/statistics.md come from ``tests/unit/stats/quantile_tables.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jobs.stats.analysis import compare_variations
from jobs.stats.quantiles import (
    ClusterSums,
    QuantileStatistic,
    clustered_quantile_statistic,
    order_statistic_levels,
    quantile_moments,
    quantile_statistic,
)
from jobs.stats.results import StatsErrorCode
from tests.unit.stats._data import binomial_tolerance
from xpcore.errors import ValidationError

# --- reference: gbstats' formulas -------------------------------------------------------------------
# Transcribed from growthbook/growthbook packages/stats/gbstats/models/statistics.py (commit
# 020838965897f622d4ebda60006d200c74f472f4): QuantileStatistic.variance_init and
# QuantileClusteredStatistic.variance_init / get_cluster_variance. gbstats' `variance` is per unit; the
# variance of the quantile estimate its tests use is `variance / n`.

_Z = 1.959963984540054


def _gbstats_iid_variance(n: int, n_star: int, lower: float, upper: float) -> float:
    return (n_star / n) * (n - 1) * ((upper - lower) / (2 * _Z)) ** 2


def _gbstats_cluster_variance(
    n: int, n_star: int, nu: float, lower: float, upper: float, sums: tuple[float, ...], n_clusters: int
) -> float:
    main_sum, main_ss, den_sum, den_ss, cross = sums
    mu_s, mu_n = main_sum / n_clusters, den_sum / n_clusters
    c = n_clusters / (n_clusters - 1)
    sigma_2_s = (main_ss / n_clusters - mu_s * mu_s) * c
    sigma_2_n = (den_ss / n_clusters - mu_n * mu_n) * c
    sigma_s_n = (cross / n_clusters - mu_s * mu_n) * c
    v_cluster = (sigma_2_s - 2 * mu_s * sigma_s_n / mu_n + mu_s**2 * sigma_2_n / mu_n**2) / (
        n_clusters * mu_n**2
    )
    return _gbstats_iid_variance(n, n_star, lower, upper) * v_cluster / (nu * (1 - nu) / n)


@pytest.mark.parametrize(
    ("n", "n_star", "nu", "lower", "upper"),
    [(1000, 1000, 0.5, 9.2, 10.9), (5000, 4000, 0.9, 31.0, 33.5), (400, 400, 0.99, 80.0, 140.0)],
)
def test_per_unit_variance_matches_gbstats(
    n: int, n_star: int, nu: float, lower: float, upper: float
) -> None:
    statistic = QuantileStatistic(n, nu, (lower + upper) / 2, lower, upper, n_star=n_star)
    assert statistic.variance() == pytest.approx(
        _gbstats_iid_variance(n, n_star, lower, upper) / n, rel=1e-12
    )


def test_per_event_variance_matches_gbstats() -> None:
    sums = (2400.0, 19000.0, 5000.0, 61000.0, 33000.0)
    clusters = ClusterSums(800, *sums)
    statistic = QuantileStatistic(5000, 0.5, 12.0, 11.0, 13.1, clusters=clusters)
    expected = _gbstats_cluster_variance(5000, 5000, 0.5, 11.0, 13.1, sums, 800) / 5000
    assert statistic.variance() == pytest.approx(expected, rel=1e-12)


# --- reference: asymptotic variance of a sample quantile, and a bootstrap --------------------------


@pytest.mark.parametrize(
    ("nu", "draw", "theory"),
    [
        # Normal(0, 1) median: Var = π/2 / n.
        (0.5, lambda rng, n: rng.normal(0.0, 1.0, n), lambda n: math.pi / 2 / n),
        # Exponential(1) p90: q = −ln(0.1), f(q) = 0.1, Var = ν(1−ν)/(n f²) = 9 / n.
        (0.9, lambda rng, n: rng.exponential(1.0, n), lambda n: 0.9 * 0.1 / (n * 0.01)),
    ],
)
def test_standard_error_matches_the_asymptotic_variance(nu, draw, theory) -> None:  # type: ignore[no-untyped-def]
    """The mean estimated Var(q̂) over 300 seeded samples of 4,000 is within 8 % of ν(1−ν)/(n f(q)²),
    and so is the empirical variance of q̂ across those samples (its own sampling error is ~8 %)."""
    rng = np.random.default_rng(16_083)
    n = 4000
    estimates, variances = [], []
    for _ in range(300):
        statistic = quantile_statistic(draw(rng, n), nu)
        estimates.append(statistic.quantile)
        variances.append(statistic.variance())
    assert float(np.mean(variances)) == pytest.approx(theory(n), rel=0.08)
    assert float(np.var(estimates, ddof=1)) == pytest.approx(theory(n), rel=0.2)


def test_standard_error_matches_a_seeded_bootstrap() -> None:
    """One lognormal sample of 3,000: 2,000 bootstrap replicates of its p90; their variance is within
    15 % of the order-statistic variance."""
    rng = np.random.default_rng(83)
    values = rng.lognormal(3.0, 1.0, 3000)
    statistic = quantile_statistic(values, 0.9)
    replicates = np.quantile(rng.choice(values, (2000, values.size)), 0.9, axis=1, method="inverted_cdf")
    assert statistic.variance() == pytest.approx(float(np.var(replicates, ddof=1)), rel=0.15)


# --- seeded simulations: A/A false positives, coverage, per-event clustering ------------------------

RUNS = 600
ALPHA = 0.05


def _reject_rate(
    pairs: list[tuple[QuantileStatistic, QuantileStatistic]], difference: str = "absolute"
) -> float:
    results = [
        compare_variations([a, b], method="frequentist", difference=difference, alpha=ALPHA)[0]  # type: ignore[arg-type]
        for a, b in pairs
    ]
    assert all(r.error is None for r in results)
    return sum(r.significant for r in results) / len(results)


@pytest.mark.parametrize("nu", [0.5, 0.9, 0.99])
def test_aa_false_positive_rate_per_unit(nu: float) -> None:
    """600 A/A experiments, lognormal values, 2,000 units per arm: rejections at α = 0.05 within
    3 binomial standard deviations of 0.05, for the absolute and the relative difference."""
    rng = np.random.default_rng(int(nu * 1000))
    pairs = [
        (
            quantile_statistic(rng.lognormal(1.0, 1.0, 2000), nu),
            quantile_statistic(rng.lognormal(1.0, 1.0, 2000), nu),
        )
        for _ in range(RUNS)
    ]
    tolerance = binomial_tolerance(ALPHA, RUNS)
    for difference in ("absolute", "relative"):
        assert abs(_reject_rate(pairs, difference) - ALPHA) <= tolerance, difference


def test_interval_covers_the_true_difference_of_quantiles() -> None:
    """Treatment multiplies every value by 1.1: the true p90 difference is 0.1·q90 of lognormal(1, 1).
    The 95 % interval covers it in 95 % ± 3 sd of 600 runs."""
    rng = np.random.default_rng(9090)
    true_q90 = math.exp(1.0 + 1.2815515655446004)
    covered = 0
    for _ in range(RUNS):
        a = quantile_statistic(rng.lognormal(1.0, 1.0, 2000), 0.9)
        b = quantile_statistic(1.1 * rng.lognormal(1.0, 1.0, 2000), 0.9)
        result = compare_variations([a, b], method="frequentist", difference="absolute", alpha=ALPHA)[0]
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= 0.1 * true_q90 <= result.ci_high
    assert abs(covered / RUNS - (1 - ALPHA)) <= binomial_tolerance(ALPHA, RUNS)


def _clustered_arm(rng: np.random.Generator, units: int) -> tuple[np.ndarray, np.ndarray]:
    """Events of ``units`` units: 1 + Poisson(5) events each, log value = unit effect + event noise (the
    events of one unit are strongly correlated)."""
    counts = 1 + rng.poisson(5.0, units)
    owner = np.repeat(np.arange(units), counts)
    values = np.exp(rng.normal(0.0, 1.0, units)[owner] + rng.normal(0.0, 0.4, owner.size))
    return values, owner


def test_aa_false_positive_rate_per_event_needs_the_cluster_variance() -> None:
    """600 A/A experiments, 400 units per arm, ~6 correlated events per unit, p50 over events: the
    cluster-robust variance rejects 0.05 ± 3 sd; treating events as independent rejects far more."""
    rng = np.random.default_rng(6161)
    clustered, naive = [], []
    for _ in range(RUNS):
        arms = [_clustered_arm(rng, 400) for _ in range(2)]
        clustered.append(tuple(clustered_quantile_statistic(v, u, 0.5) for v, u in arms))
        naive.append(tuple(quantile_statistic(v, 0.5) for v, _ in arms))
    assert abs(_reject_rate(clustered) - ALPHA) <= binomial_tolerance(ALPHA, RUNS)  # type: ignore[arg-type]
    assert _reject_rate(naive) > 0.2  # type: ignore[arg-type]


# --- behaviour -------------------------------------------------------------------------------------


def test_levels_widen_with_fewer_values_and_clip_at_the_ends() -> None:
    assert order_statistic_levels(0.5, 10_000) == pytest.approx((0.5 - 0.0098, 0.5 + 0.0098), abs=1e-4)
    assert order_statistic_levels(0.99, 10) == (pytest.approx(0.99 - _Z * math.sqrt(0.0099 / 10)), 1.0)


def test_relative_lift_has_the_absolute_p_value_and_a_fieller_interval() -> None:
    rng = np.random.default_rng(5)
    a = quantile_statistic(rng.lognormal(1.0, 1.0, 3000), 0.9)
    b = quantile_statistic(1.2 * rng.lognormal(1.0, 1.0, 3000), 0.9)
    absolute = compare_variations([a, b], method="frequentist", difference="absolute")[0]
    relative = compare_variations([a, b], method="frequentist", difference="relative")[0]
    assert relative.p_value == pytest.approx(absolute.p_value)
    assert relative.estimate == pytest.approx(b.quantile / a.quantile - 1)
    assert relative.ci_low is not None and relative.ci_high is not None
    assert relative.ci_low < relative.estimate < relative.ci_high


@pytest.mark.parametrize(
    "method", ["sequential", "bayesian", "group_sequential_obf", "group_sequential_pocock"]
)
def test_every_method_takes_quantile_statistics(method: str) -> None:
    rng = np.random.default_rng(7)
    a = quantile_statistic(rng.lognormal(1.0, 1.0, 3000), 0.5)
    b = quantile_statistic(rng.lognormal(1.0, 1.0, 3000), 0.5)
    result = compare_variations([a, b], method=method, planned_units=12_000)[0]  # type: ignore[arg-type]
    assert result.error is None and result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < result.estimate < result.ci_high  # type: ignore[operator]


def test_degenerate_inputs_give_coded_results() -> None:
    rng = np.random.default_rng(1)
    small = quantile_statistic(rng.normal(size=300), 0.99)  # p99 needs > 380 values
    assert quantile_moments(small, small, "absolute").error is StatsErrorCode.insufficient_data
    ties = quantile_statistic(np.zeros(1000), 0.5)
    assert quantile_moments(ties, ties, "absolute").error is StatsErrorCode.zero_variance
    assert quantile_moments(ties, ties, "relative").error is StatsErrorCode.zero_control_mean
    empty = quantile_statistic([], 0.5)
    assert quantile_moments(empty, ties, "absolute").error is StatsErrorCode.empty_variation


@pytest.mark.parametrize(
    "build",
    [
        lambda: QuantileStatistic(10, 1.0, 1.0, 0.0, 2.0),
        lambda: QuantileStatistic(10, 0.5, 3.0, 0.0, 2.0),
        lambda: QuantileStatistic(10, 0.5, math.nan, 0.0, 2.0),
        lambda: quantile_statistic([1.0, math.inf], 0.5),
        lambda: clustered_quantile_statistic([1.0, 2.0], ["u"], 0.5),
    ],
)
def test_invalid_inputs_are_rejected(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        build()


@pytest.mark.parametrize("method", ["sequential", "group_sequential_obf", "bayesian"])
def test_aa_rejections_of_the_other_methods_stay_at_most_alpha(method: str) -> None:
    """400 A/A experiments at p90 (lognormal, 2,000 units per arm), analysed once at the planned horizon:
    each method rejects (interval excludes 0) at most α + 3 sd."""
    rng = np.random.default_rng(4242)
    runs = 400
    rejections = 0
    for _ in range(runs):
        a = quantile_statistic(rng.lognormal(1.0, 1.0, 2000), 0.9)
        b = quantile_statistic(rng.lognormal(1.0, 1.0, 2000), 0.9)
        result = compare_variations([a, b], method=method, difference="absolute", planned_units=4000)[0]  # type: ignore[arg-type]
        assert result.error is None
        rejections += result.significant
    assert rejections / runs <= ALPHA + binomial_tolerance(ALPHA, runs)
