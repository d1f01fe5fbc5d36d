"""Our results on sufficient statistics equal scipy's on the raw data, and published examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jobs.stats import (
    ProportionStatistic,
    benjamini_hochberg,
    holm_bonferroni,
    sample_ratio_mismatch,
    welch_t_test,
)
from tests.unit.stats._data import mean_stat
from xpcore.errors import ValidationError


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_welch_p_value_and_interval_equal_scipy_ttest_ind(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    control = rng.lognormal(0.0, 1.0, 80 + 40 * seed)
    treatment = rng.lognormal(0.1, 1.3, 60 + 25 * seed)
    ours = welch_t_test(mean_stat(control), mean_stat(treatment), difference="absolute", alpha=alpha)
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(confidence_level=1 - alpha)
    assert ours.estimate == pytest.approx(treatment.mean() - control.mean(), rel=1e-10)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-8)
    assert ours.ci_low == pytest.approx(interval.low, rel=1e-8)
    assert ours.ci_high == pytest.approx(interval.high, rel=1e-8)


def test_binomial_welch_equals_scipy_on_the_zero_one_data() -> None:
    control = np.r_[np.ones(120), np.zeros(880)]
    treatment = np.r_[np.ones(151), np.zeros(849)]
    ours = welch_t_test(ProportionStatistic(1000, 120), ProportionStatistic(1000, 151), difference="absolute")
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-8)
    assert ours.ci_low == pytest.approx(reference.confidence_interval().low, rel=1e-8)


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ([5000, 5100], [0.5, 0.5]),
        ([980, 2050, 3100], [1, 2, 3]),
        ([100, 300], [0.2, 0.8]),
        ([50, 50], [1, 1]),
    ],
)
def test_srm_equals_scipy_chisquare(counts: list[int], weights: list[float]) -> None:
    expected = np.array(weights) / np.sum(weights) * np.sum(counts)
    reference = stats.chisquare(counts, expected)
    ours = sample_ratio_mismatch(counts, weights)
    assert ours.chi_square == pytest.approx(reference.statistic, rel=1e-12, abs=1e-12)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-10)


def test_srm_published_example_600_vs_400() -> None:
    """Wikipedia, "Sample ratio mismatch" (Example section): 1000 users meant to split 50/50 land 600/400;
    Pearson's chi-square test gives p = 2.54 × 10⁻¹⁰.
    https://en.wikipedia.org/wiki/Sample_ratio_mismatch
    """
    result = sample_ratio_mismatch([600, 400], [0.5, 0.5])
    assert result.chi_square == pytest.approx(40.0)
    assert result.p_value == pytest.approx(2.54e-10, rel=5e-3)


def test_srm_published_example_44000_vs_45000() -> None:
    """SRM checker (https://srm.osc.garden, "Context"): a 50/50 experiment with 44,000 users in A and
    45,000 in B; "the probability of seeing this imbalance (or a larger one) is less than 0.1%" —
    the page quotes p = 0.0008.
    """
    result = sample_ratio_mismatch([44_000, 45_000], [0.5, 0.5])
    assert result.p_value == pytest.approx(0.0008, abs=5e-5)


def test_srm_with_no_units_is_coded_and_bad_weights_are_rejected() -> None:
    assert sample_ratio_mismatch([0, 0], [1, 1]).error is not None
    with pytest.raises(ValidationError, match="weights"):
        sample_ratio_mismatch([10, 10], [1, 0])
    with pytest.raises(ValidationError, match="entries"):
        sample_ratio_mismatch([10, 10], [1, 1, 1])


def test_holm_bonferroni_published_example() -> None:
    """Wikipedia, "Holm–Bonferroni method" (Example): four hypotheses with p = 0.01, 0.04, 0.03, 0.005
    at α = 0.05: H4 (0.005 < 0.0125) and H1 (0.01 < 0.0167) are rejected, H3 (0.03 > 0.025) is not,
    which stops the procedure. Adjusted p-values: 0.03, 0.06, 0.06, 0.02.
    """
    adjusted = holm_bonferroni([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]


def test_holm_bonferroni_matches_the_step_down_definition() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        p = rng.uniform(0, 0.2, rng.integers(1, 12)).tolist()
        m = len(p)
        order = np.argsort(p)
        rejected = set()
        for rank, index in enumerate(order):
            if p[index] <= 0.05 / (m - rank):
                rejected.add(int(index))
            else:
                break
        assert {i for i, q in enumerate(holm_bonferroni(p)) if q <= 0.05} == rejected


def test_benjamini_hochberg_equals_scipy_false_discovery_control() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        p = rng.uniform(0, 0.3, rng.integers(1, 30))
        assert benjamini_hochberg(p.tolist()) == pytest.approx(stats.false_discovery_control(p, method="bh"))


def test_corrections_reject_values_outside_zero_one() -> None:
    with pytest.raises(ValidationError):
        holm_bonferroni([0.1, 1.5])
    with pytest.raises(ValidationError):
        benjamini_hochberg([float("nan")])
