"""Poisoned sums (issue #13 item 2, decision 0037): a metric whose sums are not finite gets a coded error
for that metric alone; every other metric, the SRM check, segments and CUPED still compute."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.analysis import analyze_experiment
from jobs.results.rows import VariationSums
from jobs.results.segments import analyze_segments
from jobs.results.snapshots import results_table
from schemas.records import ExperimentStatus

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SINCE = datetime(1970, 1, 1, tzinfo=UTC)
CONVERSION, REVENUE, PAGEVIEWS = DEFAULT_METRICS
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
METRICS = MetricsSpec(
    primary=("conversion",), secondary=("revenue", "pageviews", "aov"), definitions=(ORDERS, AOV)
)
BOUNDS: dict[str, Any] = {"computed_at": NOW, "since": SINCE, "until": NOW}


def spec() -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="Exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(
            VariationSpec(0, "control", "Control", 0.5),
            VariationSpec(1, "treatment", "Treatment", 0.5),
        ),
        metrics=METRICS,
    )


def clean_sums() -> dict[str, list[VariationSums]]:
    return {
        "conversion": [VariationSums(0, 1000, 100.0, 100.0), VariationSums(1, 1010, 130.0, 130.0)],
        "revenue": [VariationSums(0, 1000, 4000.0, 250000.0), VariationSums(1, 1010, 5200.0, 330000.0)],
        "pageviews": [VariationSums(0, 1000, 2000.0, 6000.0), VariationSums(1, 1010, 2100.0, 6300.0)],
        "aov": [
            VariationSums(0, 1000, 4000.0, 250000.0, 110.0, 130.0, 5000.0),
            VariationSums(1, 1010, 5200.0, 330000.0, 140.0, 170.0, 6500.0),
        ],
    }


def poisoned(value: float = math.inf) -> dict[str, list[VariationSums]]:
    """Revenue (and the ratio built on it) of treatment with one unit worth 1.7e308: Σ² is infinite."""
    sums = clean_sums()
    control = sums["revenue"][0]
    sums["revenue"] = [control, VariationSums(1, 1010, 1.7e308, value)]
    control = sums["aov"][0]
    sums["aov"] = [control, VariationSums(1, 1010, 1.7e308, value, 141.0, 171.0, value)]
    return sums


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_poisoned_metric_gets_a_coded_error_and_the_others_their_numbers(value: float) -> None:
    clean = analyze_experiment(spec(), clean_sums(), **BOUNDS).to_json()
    result = analyze_experiment(spec(), poisoned(value), **BOUNDS)
    document = json.loads(json.dumps(result.to_json(), allow_nan=False))  # valid JSON: no inf/NaN
    metrics = {m["metric"]: m for m in document["metrics"]}
    for name in ("revenue", "aov"):
        variants = metrics[name]["variants"]
        assert [v["error"] for v in variants] == ["non_finite_sums", "non_finite_sums"], name
        assert all(v["mean"] is None and v["estimate"] is None and not v["significant"] for v in variants)
        assert [v["units"] for v in variants] == [1000, 1010]
    expected = {m["metric"]: m for m in clean["metrics"]}
    for name in ("conversion", "pageviews"):
        assert metrics[name] == expected[name]
        assert metrics[name]["variants"][1]["estimate"] is not None
    assert document["srm_p_value"] == clean["srm_p_value"]


def test_the_first_metric_poisoned_still_gives_the_srm_check() -> None:
    sums = clean_sums()
    sums["conversion"] = [VariationSums(0, 1000, math.nan, math.nan), sums["conversion"][1]]
    result = analyze_experiment(spec(), sums, **BOUNDS)
    assert result.srm_p_value == analyze_experiment(spec(), clean_sums(), **BOUNDS).srm_p_value
    assert {v.to_json()["error"] for v in result.metrics[0].variants} == {"non_finite_sums"}


def test_with_cuped_and_a_correction_the_others_are_computed() -> None:
    plan = AnalysisPlan(method="frequentist", alpha=0.05, cuped=True, correction="holm")

    def with_covariate(rows: list[VariationSums], sum_x: float) -> list[VariationSums]:
        return [
            VariationSums(
                r.variation_id,
                r.units,
                r.sum_a,
                r.sum_a_squares,
                has_covariate=True,
                sum_x=sum_x,
                sum_x_squares=sum_x * 3,
                cross_sum_ax=sum_x * 2,
                units_with_covariate=r.units // 2,
            )
            for r in rows
        ]

    sums = clean_sums()
    sums["conversion"] = with_covariate(sums["conversion"], 50.0)
    sums["pageviews"] = with_covariate(sums["pageviews"], 900.0)
    sums["revenue"] = with_covariate(sums["revenue"], math.inf)  # a poisoned pre-exposure value
    result = analyze_experiment(spec(), sums, plan=plan, **BOUNDS)
    metrics = {m.metric.name: m for m in result.metrics}
    assert {v.to_json()["error"] for v in metrics["revenue"].variants} == {"non_finite_sums"}
    assert not metrics["revenue"].cuped.applied and "non_finite_sums" in (
        metrics["revenue"].cuped.reason or ""
    )
    assert metrics["conversion"].cuped.applied and metrics["pageviews"].cuped.applied
    treatment = metrics["pageviews"].variants[1]
    assert treatment.effect is not None and treatment.effect.error is None
    assert treatment.p_value_adjusted is not None


def test_segments_fold_poison_into_one_segment_only() -> None:
    rows = {
        name: [("US", row) for row in clean] + [("DE", row) for row in clean]
        for name, clean in clean_sums().items()
    }
    rows["revenue"] = [("US", r) for r in clean_sums()["revenue"]] + [
        ("DE", r) for r in poisoned()["revenue"]
    ]
    breakdown = analyze_segments(
        spec(), rows, dimension="country", top=5, plan=AnalysisPlan(), computed_at=NOW, since=SINCE, until=NOW
    )
    by_segment = {s.segment: {m.metric.name: m for m in s.result.metrics} for s in breakdown.segments}
    assert {v.to_json()["error"] for v in by_segment["DE"]["revenue"].variants} == {"non_finite_sums"}
    assert by_segment["US"]["revenue"].variants[1].effect.error is None  # type: ignore[union-attr]
    assert by_segment["DE"]["conversion"].variants[1].effect.error is None  # type: ignore[union-attr]


def test_sums_no_real_values_give_are_an_invalid_sums_error() -> None:
    sums = clean_sums()
    sums["pageviews"] = [VariationSums(0, 1000, 2000.0, 1.0), sums["pageviews"][1]]  # Σ² < (Σ)²/n
    result = analyze_experiment(spec(), sums, **BOUNDS)
    metrics = {m.metric.name: m for m in result.metrics}
    assert {v.to_json()["error"] for v in metrics["pageviews"].variants} == {"invalid_sums"}
    assert metrics["conversion"].variants[1].effect.error is None  # type: ignore[union-attr]


def test_a_poisoned_metric_is_stored_with_its_error_and_zero_sums() -> None:
    result = analyze_experiment(spec(), poisoned(), **BOUNDS)
    rows = results_table([result]).to_pylist()
    revenue = [r for r in rows if r["metric"] == "revenue"]
    assert [r["error"] for r in revenue] == ["non_finite_sums", "non_finite_sums"]
    assert all(r["sum"] == 0.0 and r["sum_squares"] == 0.0 and r["mean"] is None for r in revenue)
    conversion = [r for r in rows if r["metric"] == "conversion"]
    assert [r["error"] for r in conversion] == ["", ""] and conversion[1]["estimate"] is not None
