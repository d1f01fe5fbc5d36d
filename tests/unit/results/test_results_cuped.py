"""CUPED, corrections and segment folding in jobs.results (pure): simulations and reference computations.

- CUPED on simulated experiments where the covariate correlates with the outcome: the same point estimate
  in expectation as the plain analysis, intervals narrower by ≈ √(1 − ρ²), nominal coverage; on one data
  set, the adjusted difference and its standard error next to an OLS fit by hand (numpy least squares,
  y ~ 1 + treatment + x, the regression form of CUPED).
- Corrections: adjusted p-values are Holm's / BH's over every treatment of every metric; ``significant``
  follows the adjusted value.
- Segments: top N by units, the rest folded exactly into "other", missing values as "(none)".
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import adjusted_p_values
from jobs.results.analysis import analyze_experiment
from jobs.results.rows import VariationSums
from jobs.results.segments import MISSING_LABEL, OTHER_LABEL, fold_segments
from jobs.stats import benjamini_hochberg, holm_bonferroni
from schemas.records import ExperimentStatus
from xpcore.errors import ValidationError

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SINCE = datetime(1970, 1, 1, tzinfo=UTC)
EFFECT = 0.3
"""Absolute effect on y; control mean is 10, so the relative lift is 0.03."""


def spec(variations: int = 2) -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / variations) for i in range(variations)),
        metrics=MetricsSpec(),
    )


def cuped_sums(variation: int, y: np.ndarray, x: np.ndarray) -> VariationSums:
    return VariationSums(
        variation,
        len(y),
        float(y.sum()),
        float((y * y).sum()),
        has_covariate=True,
        sum_x=float(x.sum()),
        sum_x_squares=float((x * x).sum()),
        cross_sum_ax=float((x * y).sum()),
        units_with_covariate=int((x != 0).sum()),
    )


def simulate(rng: np.random.Generator, n: int = 1000) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two arms: x ~ N(10, 3), y = 2 + 0.8x + N(0, 2) (+ EFFECT in treatment): ρ² = 5.76 / 9.76."""
    arms = []
    for arm in range(2):
        x = rng.normal(10, 3, n)
        y = 2 + 0.8 * x + rng.normal(0, 2, n) + EFFECT * arm
        arms.append((y, x))
    return arms


def revenue(plan: AnalysisPlan, arms: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    sums = {"revenue": [cuped_sums(i, y, x) for i, (y, x) in enumerate(arms)]}
    result = analyze_experiment(spec(), sums, computed_at=NOW, since=SINCE, until=NOW, plan=plan)
    return next(m for m in result.to_json()["metrics"] if m["metric"] == "revenue")


def test_simulation_same_estimate_in_expectation_narrower_interval_nominal_coverage() -> None:
    rng = np.random.default_rng(2026)
    rho_squared = 5.76 / 9.76
    truth = EFFECT / 10.0
    cuped_estimates, plain_estimates, ratios, covered = [], [], [], 0
    runs = 400
    for _ in range(runs):
        arms = simulate(rng)
        with_cuped = revenue(AnalysisPlan("frequentist", cuped=True), arms)
        without = revenue(AnalysisPlan("frequentist"), arms)
        assert with_cuped["cuped"]["applied"] and not without["cuped"]["applied"]
        a, b = with_cuped["variants"][1], without["variants"][1]
        cuped_estimates.append(a["estimate"])
        plain_estimates.append(b["estimate"])
        ratios.append((a["ci_high"] - a["ci_low"]) / (b["ci_high"] - b["ci_low"]))
        covered += a["ci_low"] <= truth <= a["ci_high"]
    # plain SE of the lift ≈ √(2·9.76/1000)/10 = 0.014: over 400 runs the means are within ±0.0015
    assert np.mean(cuped_estimates) == pytest.approx(truth, abs=0.0015)
    assert np.mean(plain_estimates) == pytest.approx(truth, abs=0.003)
    assert np.mean(ratios) == pytest.approx(math.sqrt(1 - rho_squared), abs=0.02)
    assert max(ratios) < 1
    assert 0.92 <= covered / runs <= 0.98
    # CUPED's estimates vary less: variance ratio ≈ 1 − ρ²
    assert np.var(cuped_estimates) / np.var(plain_estimates) == pytest.approx(1 - rho_squared, abs=0.1)


def test_adjusted_difference_matches_pooled_theta_and_an_ols_fit() -> None:
    arms = simulate(np.random.default_rng(7), n=3000)
    metric = revenue(AnalysisPlan("frequentist", cuped=True), arms)
    (y0, x0), (y1, x1) = arms
    y, x = np.concatenate([y0, y1]), np.concatenate([x0, x1])
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    assert metric["cuped"]["theta"] == pytest.approx(theta, rel=1e-9)
    adjusted = (y1.mean() - theta * x1.mean()) - (y0.mean() - theta * x0.mean())
    treatment = metric["variants"][1]
    assert treatment["estimate"] == pytest.approx(adjusted / y0.mean(), rel=1e-9)

    # OLS y ~ 1 + T + x (by hand): the treatment coefficient is CUPED's difference with θ fitted within
    # arms instead of pooled — equal up to O(effect²) terms, far below one standard error here
    design = np.column_stack([np.ones_like(y), np.r_[np.zeros(len(y0)), np.ones(len(y1))], x])
    coefficients, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    sigma2 = residuals[0] / (len(y) - 3)
    ols_se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    assert adjusted == pytest.approx(coefficients[1], abs=0.02 * ols_se)
    # the interval's half-width, back on the absolute scale, is the OLS one (t quantile ≈ z at n = 6000)
    half_width = (treatment["ci_high"] - treatment["ci_low"]) / 2 * y0.mean()
    assert half_width == pytest.approx(1.96 * ols_se, rel=0.03)


def mean_sums(variation: int, n: int, mean: float, variance: float) -> VariationSums:
    return VariationSums(variation, n, n * mean, (n - 1) * variance + n * mean * mean)


SUMS = {
    "conversion": [VariationSums(0, 1000, 100.0, 100.0), VariationSums(1, 1000, 104.0, 104.0)],
    "revenue": [mean_sums(0, 1000, 10.0, 4.0), mean_sums(1, 1000, 10.2, 4.0)],  # p ≈ 0.03
    "pageviews": [mean_sums(0, 1000, 3.0, 1.0), mean_sums(1, 1000, 3.02, 1.0)],
}


class TestCorrections:
    def metrics(self, correction: str) -> list[dict[str, Any]]:
        plan = AnalysisPlan("frequentist", correction=correction)  # type: ignore[arg-type]
        result = analyze_experiment(spec(), SUMS, computed_at=NOW, since=SINCE, until=NOW, plan=plan)
        return result.to_json()["metrics"]

    def test_holm_and_bh_adjust_every_metric_as_one_family(self) -> None:
        raw = [m["variants"][1]["p_value"] for m in self.metrics("none")]
        assert all(m["variants"][1]["p_value_adjusted"] is None for m in self.metrics("none"))
        for correction, reference in (("holm", holm_bonferroni), ("bh", benjamini_hochberg)):
            metrics = self.metrics(correction)
            assert [m["variants"][1]["p_value"] for m in metrics] == raw  # raw p-values are kept
            adjusted = [m["variants"][1]["p_value_adjusted"] for m in metrics]
            assert adjusted == pytest.approx(reference(raw))
            for metric in metrics:
                variant = metric["variants"][1]
                assert variant["significant"] == (variant["p_value_adjusted"] < 0.05)
                assert metric["variants"][0]["p_value_adjusted"] is None  # control

    def test_a_marginal_lift_is_no_longer_significant_after_holm(self) -> None:
        plain = {m["metric"]: m["variants"][1] for m in self.metrics("none")}
        holm = {m["metric"]: m["variants"][1] for m in self.metrics("holm")}
        assert 0.01 < plain["revenue"]["p_value"] < 0.05 and plain["revenue"]["significant"]
        assert holm["revenue"]["p_value_adjusted"] > 0.05 and not holm["revenue"]["significant"]

    def test_missing_p_values_are_not_in_the_family(self) -> None:
        assert adjusted_p_values([0.01, None, 0.04], "holm") == pytest.approx([0.02, None, 0.04])
        assert adjusted_p_values([None], "bh") == [None]
        assert adjusted_p_values([0.2, 0.01], "none") == [0.2, 0.01]


class TestSegmentFolding:
    IDS = (0, 1)

    def rows(self) -> list[tuple[str, VariationSums]]:
        sizes = {"us": (50, 52), "de": (30, 31), "fr": (20, 18), "it": (5, 6), "": (7, 8), "es": (2, 0)}
        return [
            (name, VariationSums(v, n, float(n), float(n * 2)))
            for name, counts in sizes.items()
            for v, n in enumerate(counts)
            if n
        ]

    def test_top_segments_then_other_exactly(self) -> None:
        folded = fold_segments({"m": self.rows()}, ["m"], self.IDS, top=3)
        assert list(folded) == ["us", "de", "fr", OTHER_LABEL]
        other = folded[OTHER_LABEL]["m"]
        assert [s.units for s in other] == [5 + 7 + 2, 6 + 8 + 0]
        assert [s.sum_a_squares for s in other] == [28.0, 28.0]
        assert [s.variation_id for s in other] == [0, 1]

    def test_all_segments_fit_no_other_and_missing_is_labelled(self) -> None:
        folded = fold_segments({"m": self.rows()}, ["m"], self.IDS, top=10)
        assert OTHER_LABEL not in folded and MISSING_LABEL in folded
        assert [s.units for s in folded["es"]["m"]] == [2, 0]  # a variation without units is empty

    def test_a_real_value_named_other_is_kept_apart(self) -> None:
        rows = [*self.rows(), ("other", VariationSums(0, 100, 1.0, 1.0))]
        folded = fold_segments({"m": rows}, ["m"], self.IDS, top=1)
        assert list(folded) == ["us", "(other)"]

    def test_top_must_be_positive(self) -> None:
        with pytest.raises(ValidationError, match="--top"):
            fold_segments({"m": self.rows()}, ["m"], self.IDS, top=0)
