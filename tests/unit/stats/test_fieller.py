"""Fieller's interval for relative lifts (decision 0062): a reference check against scipy and a seeded
A/A simulation of the tails at ~50 conversions per arm (issue #16; the full table is in
docs/statistics.md, from bench/sim_stats_calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from jobs.stats import (
    CupedStatistic,
    ProportionStatistic,
    compare_variations,
    is_guardrail_harmed,
    sequential_test,
    welch_t_test,
)
from jobs.stats.effects import effect_moments, welch_satterthwaite_df
from tests.unit.stats._data import cuped_stat, mean_stat, ratio_stat


def test_the_interval_is_the_set_of_lifts_scipys_welch_test_does_not_reject() -> None:
    """At each end r, scipy's Welch t statistic of b against (1 + r)·a equals the Student quantile used."""
    rng = np.random.default_rng(7)
    a, b = rng.exponential(10.0, 400), rng.exponential(11.0, 300)
    result = welch_t_test(mean_stat(a), mean_stat(b), difference="relative", alpha=0.05)
    assert result.ci_low is not None and result.ci_high is not None
    terms = effect_moments(mean_stat(a), mean_stat(b), "relative").fieller
    assert terms is not None
    nu = welch_satterthwaite_df(terms.variance_control, a.size, terms.variance_treatment, b.size)
    quantile = float(special.stdtrit(nu, 0.975))
    for end, sign in ((result.ci_low, 1.0), (result.ci_high, -1.0)):
        scaled = (1 + end) * a
        statistic = stats.ttest_ind(b, scaled, equal_var=False).statistic
        assert statistic == pytest.approx(sign * quantile, rel=1e-9)
    assert result.ci_low < result.estimate < result.ci_high  # type: ignore[operator]
    # a lift just inside an end is not rejected, one just outside is
    inside = stats.ttest_ind(b, (1 + result.ci_high - 1e-6) * a, equal_var=False).statistic
    outside = stats.ttest_ind(b, (1 + result.ci_high + 1e-6) * a, equal_var=False).statistic
    assert abs(inside) < quantile < abs(outside)


@pytest.mark.parametrize("method", ["frequentist", "sequential"])
def test_a_relative_lift_has_the_p_value_and_significance_of_the_absolute_difference(method: str) -> None:
    for control, treatment in (
        (ProportionStatistic(1000, 100), ProportionStatistic(1000, 130)),
        (ProportionStatistic(20000, 1000), ProportionStatistic(20000, 1090)),
    ):
        relative = compare_variations([control, treatment], method=method, difference="relative")[0]  # type: ignore[arg-type]
        absolute = compare_variations([control, treatment], method=method, difference="absolute")[0]  # type: ignore[arg-type]
        assert relative.p_value == pytest.approx(absolute.p_value, rel=1e-12)
        assert relative.significant == absolute.significant
        assert relative.estimate == pytest.approx(0.3 if control.n == 1000 else 0.09)


def test_cuped_and_ratio_relative_intervals_contain_the_estimate_and_agree_with_the_absolute_test() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(10, 3, (2, 800))
    y = 2 + 0.8 * x + rng.normal(0, 2, (2, 800))
    y[1] *= 1.04
    control, treatment = cuped_stat(y[0], x[0]), cuped_stat(y[1], x[1])
    assert isinstance(control, CupedStatistic)
    sessions = rng.poisson(5, (2, 800)) + 1
    clicks = rng.binomial(sessions, 0.3)
    pairs = [(control, treatment), (ratio_stat(clicks[0], sessions[0]), ratio_stat(clicks[1], sessions[1]))]
    for a, b in pairs:
        relative = welch_t_test(a, b, difference="relative")
        absolute = welch_t_test(a, b, difference="absolute")
        assert relative.ci_low is not None and relative.ci_high is not None
        assert relative.ci_low < relative.estimate < relative.ci_high  # type: ignore[operator]
        assert relative.p_value == pytest.approx(absolute.p_value, rel=1e-12)
        assert relative.significant == absolute.significant


def test_an_unbounded_fieller_set_has_no_ends_and_is_not_significant() -> None:
    """3 conversions in control: the control mean is within 1.96 se of 0, so no finite interval exists."""
    result = welch_t_test(ProportionStatistic(1000, 3), ProportionStatistic(1000, 5), difference="relative")
    assert (result.ci_low, result.ci_high, result.error) == (None, None, None)
    assert result.p_value is not None and not result.significant
    delta = welch_t_test(
        ProportionStatistic(1000, 3),
        ProportionStatistic(1000, 5),
        difference="relative",
        relative_interval="delta",
    )
    assert delta.ci_low is not None  # the delta method shows a finite (and wrong) interval
    # the confidence sequence at 200 units is ~6.7 se wide per side: 20 conversions are not enough
    early = sequential_test(ProportionStatistic(100, 20), ProportionStatistic(100, 25))
    assert (early.ci_low, early.ci_high, early.error) == (None, None, None)


@pytest.mark.slow
def test_aa_tails_at_50_conversions_per_arm_are_calibrated_and_the_delta_method_was_not() -> None:
    """60,000 A/A experiments, 1,000 units per arm at 5 % (50 conversions), relative lift.

    Bounds from issue #16: rejection at α = 0.001 and 0.0025 within 1.3× nominal, the guardrail rule (95 %
    interval wholly below 0) ≤ 3 %. The delta method on the same data exceeds 2.5× nominal at both
    (audit: 5.2× and 3.3×). Expected rejections at α = 0.001: 60, binomial sd 7.7; the bound is 78."""
    runs, n = 60_000, 1000
    rng = np.random.default_rng(20261205)
    conversions = rng.binomial(n, 0.05, (runs, 2))
    p_fieller, p_delta, harmed = np.ones(runs), np.ones(runs), np.zeros(runs, dtype=bool)
    for i in range(runs):
        a, b = ProportionStatistic(n, int(conversions[i, 0])), ProportionStatistic(n, int(conversions[i, 1]))
        fieller = welch_t_test(a, b, difference="relative")
        delta = welch_t_test(a, b, difference="relative", relative_interval="delta")
        p_fieller[i] = fieller.p_value if fieller.p_value is not None else 1.0
        p_delta[i] = delta.p_value if delta.p_value is not None else 1.0
        harmed[i] = is_guardrail_harmed(fieller)
    for alpha in (0.001, 0.0025):
        fieller_rate, delta_rate = float(np.mean(p_fieller < alpha)), float(np.mean(p_delta < alpha))
        print(
            f"\nA/A 50 conversions, α={alpha}: "
            f"Fieller {fieller_rate / alpha:.2f}×, delta {delta_rate / alpha:.2f}× nominal"
        )
        assert fieller_rate <= 1.3 * alpha
        assert delta_rate > 2.5 * alpha
    print(f"95 % interval wholly below 0: {harmed.mean():.4f}")
    # nominal 2.5 %; ±3 binomial sd over 60,000 runs is ±0.0019
    assert harmed.mean() <= 0.03
