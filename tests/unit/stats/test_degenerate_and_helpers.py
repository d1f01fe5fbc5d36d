"""Coded errors for degenerate data, sequential properties, power, segments, guardrails."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.stats import (
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    StatsErrorCode,
    ValueSums,
    compare_variations,
    gaussian_bayesian_test,
    is_guardrail_harmed,
    minimum_detectable_effect,
    power,
    sample_size_per_variation,
    sequential_test,
    top_segments,
    welch_t_test,
)
from jobs.stats.sequential import sequential_rho
from xpcore.errors import ValidationError

TESTS = [welch_t_test, sequential_test, gaussian_bayesian_test]


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize(
    ("control", "treatment", "difference", "code"),
    [
        (ProportionStatistic(0, 0), ProportionStatistic(100, 5), "absolute", StatsErrorCode.empty_variation),
        (ProportionStatistic(100, 5), ProportionStatistic(0, 0), "relative", StatsErrorCode.empty_variation),
        (
            SampleMeanStatistic(1, 2.0, 4.0),
            SampleMeanStatistic(50, 10, 30),
            "absolute",
            StatsErrorCode.insufficient_data,
        ),
        (ProportionStatistic(100, 0), ProportionStatistic(100, 0), "absolute", StatsErrorCode.zero_variance),
        (
            SampleMeanStatistic(3, 6, 12),
            SampleMeanStatistic(3, 9, 27),
            "absolute",
            StatsErrorCode.zero_variance,
        ),
        (
            ProportionStatistic(100, 0),
            ProportionStatistic(100, 4),
            "relative",
            StatsErrorCode.zero_control_mean,
        ),
        (
            RatioStatistic(10, ValueSums(0, 0), ValueSums(0, 0), 0),
            RatioStatistic(10, ValueSums(5, 5), ValueSums(10, 10), 5),
            "relative",
            StatsErrorCode.zero_denominator,
        ),
    ],
)
def test_degenerate_inputs_give_a_coded_result_not_an_exception(
    test: object, control: object, treatment: object, difference: str, code: StatsErrorCode
) -> None:
    result = test(control, treatment, difference=difference)  # type: ignore[operator]
    assert result.error is code
    assert result.estimate is None and result.ci_low is None and result.p_value is None
    assert not result.significant


def test_one_bad_variation_does_not_break_the_others() -> None:
    stats = [ProportionStatistic(1000, 100), ProportionStatistic(0, 0), ProportionStatistic(1000, 150)]
    empty, good = compare_variations(stats, method="frequentist", difference="relative")
    assert empty.error is StatsErrorCode.empty_variation
    assert good.error is None and good.significant


def test_invalid_settings_are_validation_errors() -> None:
    a, b = ProportionStatistic(100, 10), ProportionStatistic(100, 12)
    with pytest.raises(ValidationError, match="alpha"):
        welch_t_test(a, b, alpha=1.5)
    with pytest.raises(ValidationError, match="same kind"):
        welch_t_test(a, SampleMeanStatistic(100, 12, 12))
    with pytest.raises(ValidationError, match="tuning parameter"):
        sequential_test(a, b, tuning_parameter=0)
    with pytest.raises(ValidationError, match="difference"):
        welch_t_test(a, b, difference="ratio")  # type: ignore[arg-type]


def test_sequential_rho_is_the_issue_formula_and_p_below_alpha_iff_interval_excludes_zero() -> None:
    alpha = 0.05
    assert sequential_rho(alpha, 5000) == pytest.approx(
        np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / 5000)
    )
    rng = np.random.default_rng(13)
    for _ in range(300):
        n = int(rng.integers(100, 20000))
        a = ProportionStatistic(n, int(rng.binomial(n, 0.1)))
        b = ProportionStatistic(n, int(rng.binomial(n, 0.1 * rng.uniform(0.9, 1.2))))
        sequential = sequential_test(a, b, difference="absolute")
        fixed = welch_t_test(a, b, difference="absolute")
        assert sequential.p_value is not None and fixed.p_value is not None
        assert (sequential.p_value < alpha) == sequential.significant
        assert sequential.p_value >= fixed.p_value
        assert sequential.ci_low is not None and fixed.ci_low is not None and sequential.ci_low < fixed.ci_low


def test_sample_size_matches_the_sixteen_sigma_squared_rule_of_thumb() -> None:
    """van Belle (2008) / Kohavi et al. (2009): n ≈ 16σ²/δ² per variation for α = 0.05, 80 % power
    (the exact normal-theory constant is 2(1.96 + 0.8416)² = 15.7)."""
    n = sample_size_per_variation(0.01, 1.0, alpha=0.05, target_power=0.8)
    assert n == pytest.approx(2 * (1.959964 + 0.841621) ** 2 / 0.01**2, rel=1e-3)
    assert n == pytest.approx(16 / 0.01**2, rel=0.03)
    assert power(0.01, 1.0, n) >= 0.8 > power(0.01, 1.0, n - 1)
    mde = minimum_detectable_effect(1.0, n)
    assert power(mde, 1.0, n) == pytest.approx(0.8, abs=1e-9)
    sequential = sample_size_per_variation(0.01, 1.0, method="sequential")
    assert sequential > n


@pytest.mark.slow
def test_power_matches_simulated_rejection_rate() -> None:
    """Conversion 10 % → 11 %: the calculator's power at its own sample size vs 2,000 simulated tests."""
    p_a, p_b = 0.10, 0.11
    variance = (p_a * (1 - p_a) + p_b * (1 - p_b)) / 2
    n = sample_size_per_variation(p_b - p_a, variance, target_power=0.8)
    rng = np.random.default_rng(14)
    conversions_a, conversions_b = rng.binomial(n, p_a, 2000), rng.binomial(n, p_b, 2000)
    rejected = [
        welch_t_test(
            ProportionStatistic(n, int(a)), ProportionStatistic(n, int(b)), difference="absolute"
        ).significant
        for a, b in zip(conversions_a, conversions_b, strict=True)
    ]
    assert np.mean(rejected) == pytest.approx(0.8, abs=3 * np.sqrt(0.8 * 0.2 / 2000))


def test_power_calculator_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        power(0.1, -1.0, 100)
    with pytest.raises(ValidationError):
        sample_size_per_variation(0.0, 1.0)
    with pytest.raises(ValidationError):
        minimum_detectable_effect(1.0, 100, target_power=0.01)


def test_top_segments_folds_the_rest_into_other_exactly() -> None:
    by_country = {
        "us": (ProportionStatistic(500, 50), ProportionStatistic(510, 60)),
        "de": (ProportionStatistic(200, 20), ProportionStatistic(190, 25)),
        "fr": (ProportionStatistic(100, 10), ProportionStatistic(90, 9)),
        "nl": (ProportionStatistic(50, 5), ProportionStatistic(60, 7)),
    }
    kept = top_segments(by_country, 2)
    assert list(kept) == ["us", "de", "other"]
    assert kept["other"] == (ProportionStatistic(150, 15), ProportionStatistic(150, 16))
    assert list(top_segments(by_country, 10)) == ["us", "de", "fr", "nl"]
    with pytest.raises(ValidationError, match="collides"):
        top_segments({**by_country, "other": by_country["us"]}, 2)


def test_guardrail_is_flagged_only_when_significantly_harmed_in_the_metric_direction() -> None:
    control = ProportionStatistic(10000, 1000)
    worse = welch_t_test(control, ProportionStatistic(10000, 880), difference="relative")
    better = welch_t_test(control, ProportionStatistic(10000, 1120), difference="relative")
    flat = welch_t_test(control, ProportionStatistic(10000, 1010), difference="relative")
    assert is_guardrail_harmed(worse) and not is_guardrail_harmed(better) and not is_guardrail_harmed(flat)
    # error rate: lower is better, so a significant increase is harm
    assert is_guardrail_harmed(better, higher_is_better=False)
    assert not is_guardrail_harmed(worse, higher_is_better=False)
    empty = welch_t_test(control, ProportionStatistic(0, 0))
    assert not is_guardrail_harmed(empty)
