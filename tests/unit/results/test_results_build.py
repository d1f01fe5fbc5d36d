"""jobs.results: query rows → engine statistics → the results JSON contract (pure, no database)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats as scipy_stats

from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.results.analysis import analyze_experiment, analyzed_metrics, statistics_for
from jobs.results.contract import ExperimentAnalysis
from jobs.results.metric_sql.scan import metric_parameters
from jobs.results.rows import VariationSums
from jobs.stats import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from jobs.stats.results import Method
from schemas.records import ExperimentStatus
from xpcore.errors import ValidationError

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SINCE = datetime(1970, 1, 1, tzinfo=UTC)
CONVERSION, REVENUE, PAGEVIEWS = DEFAULT_METRICS
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
ADD_TO_CART = metric_from_dict(
    {"name": "add_to_cart", "event": "add_to_cart", "aggregation": "count", "window": "24h"}
)
COLOR = metric_from_dict(
    {"name": "colors", "event": "view", "aggregation": "unique", "value_field": "properties.color"}
)


def spec(metrics: MetricsSpec | None = None, weights: tuple[float, ...] = (0.5, 0.5)) -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="Exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=tuple(
            VariationSpec(i, key, key.title(), w)
            for i, (key, w) in enumerate(zip(["control", "treatment", "third"], weights, strict=False))
        ),
        metrics=metrics or MetricsSpec(),
    )


def sums_of(values: dict[int, list[float]]) -> list[VariationSums]:
    return [
        VariationSums(v, len(x), float(np.sum(x)), float(np.sum(np.square(x)))) for v, x in values.items()
    ]


def test_row_from_query_ignores_extra_columns() -> None:
    row = {
        "variation_id": 1,
        "units": 10,
        "units_with_events": 3,
        "sum_a": 3.0,
        "sum_a_squares": 3.0,
        "sum_b": 0.0,
        "sum_b_squares": 0.0,
        "cross_sum": 0.0,
    }
    assert VariationSums.from_row(row) == VariationSums(1, 10, 3.0, 3.0)


class TestStatisticsFor:
    def test_binomial_is_a_proportion_of_converted_units(self) -> None:
        rows = [VariationSums(0, 100, 10.0, 10.0), VariationSums(1, 90, 12.0, 12.0)]
        assert statistics_for(CONVERSION, [0, 1], rows) == [
            ProportionStatistic(100, 10.0),
            ProportionStatistic(90, 12.0),
        ]

    def test_mean_keeps_sum_and_sum_of_squares(self) -> None:
        rows = [VariationSums(0, 3, 6.0, 14.0), VariationSums(1, 2, 1.0, 1.0)]
        assert statistics_for(REVENUE, [0, 1], rows) == [
            SampleMeanStatistic(3, 6.0, 14.0),
            SampleMeanStatistic(2, 1.0, 1.0),
        ]

    def test_ratio_carries_numerator_denominator_and_cross_sum(self) -> None:
        rows = [
            VariationSums(0, 2, 30.0, 500.0, 2.0, 2.0, 30.0),
            VariationSums(1, 2, 10.0, 100.0, 1.0, 1.0, 10.0),
        ]
        control = statistics_for(AOV, [0, 1], rows)[0]
        assert isinstance(control, RatioStatistic)
        assert (control.n, control.numerator.sum, control.denominator.sum, control.cross_sum) == (
            2,
            30,
            2,
            30,
        )
        assert control.mean == 15.0

    def test_a_variation_missing_from_the_rows_is_empty(self) -> None:
        rows = [VariationSums(1, 5, 2.0, 2.0)]
        assert statistics_for(CONVERSION, [0, 1, 2], rows) == [
            ProportionStatistic(0, 0.0),
            ProportionStatistic(5, 2.0),
            ProportionStatistic(0, 0.0),
        ]

    def test_float_noise_in_conversions_is_rounded(self) -> None:
        rows = [VariationSums(0, 10, 2.9999999999, 2.9999999999)]
        assert statistics_for(CONVERSION, [0], rows) == [ProportionStatistic(10, 3.0)]


class TestQueryParameters:
    def test_event_metric_binds_side_a_and_leaves_b_empty(self) -> None:
        p = metric_parameters(ADD_TO_CART, {}, experiment="exp", since=SINCE, until=NOW)
        assert (p["event_a"], p["aggregation_a"], p["property_a"], p["window_a_seconds"]) == (
            "add_to_cart",
            "count",
            "",
            24 * 3600.0,
        )
        assert p["event_b"] == "" and p["window_b_seconds"] == 0.0
        assert (p["experiment"], p["since"], p["until"]) == ("exp", SINCE, NOW)

    def test_defaults_have_no_window(self) -> None:
        p = metric_parameters(CONVERSION, {}, experiment="exp", since=SINCE, until=NOW)
        assert (p["event_a"], p["aggregation_a"], p["window_a_seconds"]) == ("purchase", "binary", 0.0)

    def test_property_value_field(self) -> None:
        p = metric_parameters(COLOR, {}, experiment="exp", since=SINCE, until=NOW)
        assert (p["aggregation_a"], p["property_a"]) == ("unique", "color")

    def test_ratio_binds_numerator_and_denominator(self) -> None:
        catalog = {"revenue": REVENUE, "orders": ORDERS}
        p = metric_parameters(AOV, catalog, experiment="exp", since=SINCE, until=NOW)
        assert (p["event_a"], p["aggregation_a"]) == ("purchase", "sum")
        assert (p["event_b"], p["aggregation_b"], p["window_b_seconds"]) == ("purchase", "count", 72 * 3600.0)

    def test_ratio_of_unknown_parts_is_rejected(self) -> None:
        with pytest.raises(ValidationError, match="unknown metric"):
            metric_parameters(AOV, {}, experiment="exp", since=SINCE, until=NOW)


def test_analyzed_metrics_are_the_roles_not_the_ratio_parts() -> None:
    experiment = spec(
        MetricsSpec(
            primary=("conversion",), secondary=("aov",), guardrails=("pageviews",), definitions=(ORDERS, AOV)
        )
    )
    assert [(m.name, role) for m, role in analyzed_metrics(experiment)] == [
        ("conversion", "primary"),
        ("aov", "secondary"),
        ("pageviews", "guardrail"),
    ]


def test_defaults_when_the_experiment_names_no_metric() -> None:
    assert [m.name for m, _ in analyzed_metrics(spec())] == ["conversion", "revenue", "pageviews"]


class TestAnalyzeExperiment:
    def result(
        self, sums: dict[str, list[VariationSums]], method: Method = "sequential"
    ) -> ExperimentAnalysis:
        return analyze_experiment(spec(), sums, computed_at=NOW, since=SINCE, until=NOW, method=method)

    def test_json_contract_shape(self) -> None:
        rng = np.random.default_rng(1)
        control, treatment = rng.random(400) < 0.1, rng.random(420) < 0.2
        sums = {
            "conversion": sums_of({0: control.astype(float).tolist(), 1: treatment.astype(float).tolist()})
        }
        document = json.loads(json.dumps(self.result(sums).to_json()))
        assert {"experiment", "srm_p_value", "computed_at", "metrics"} <= set(document)
        assert document["experiment"] == "exp" and document["computed_at"] == NOW.isoformat()
        assert [m["metric"] for m in document["metrics"]] == ["conversion", "revenue", "pageviews"]
        conversion = document["metrics"][0]
        assert conversion["type"] == "binomial"
        contract = {
            "variation_id",
            "name",
            "units",
            "mean",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "significant",
        }
        for variant in conversion["variants"]:
            assert contract <= set(variant)
        control_row, treatment_row = conversion["variants"]
        assert control_row["estimate"] is None and control_row["significant"] is False
        assert (control_row["variation_id"], control_row["units"]) == (0, 400)
        assert treatment_row["mean"] == pytest.approx(treatment.mean())
        expected_lift = treatment.mean() / control.mean() - 1
        assert treatment_row["estimate"] == pytest.approx(expected_lift)
        assert treatment_row["ci_low"] < expected_lift < treatment_row["ci_high"]

    def test_frequentist_p_value_matches_welch_on_unit_values(self) -> None:
        rng = np.random.default_rng(7)
        a, b = rng.exponential(10, 500), rng.exponential(11, 480)
        sums = {"revenue": sums_of({0: a.tolist(), 1: b.tolist()})}
        revenue = self.result(sums, method="frequentist").to_json()["metrics"][1]
        assert revenue["variants"][1]["estimate"] == pytest.approx(b.mean() / a.mean() - 1)
        # the relative lift's p-value (delta method) is close to Welch's on the absolute difference
        welch = scipy_stats.ttest_ind(b, a, equal_var=False).pvalue
        assert revenue["variants"][1]["p_value"] == pytest.approx(welch, rel=0.15)

    def test_srm_uses_population_against_weights(self) -> None:
        sums = {"conversion": [VariationSums(0, 1000, 10.0, 10.0), VariationSums(1, 800, 10.0, 10.0)]}
        result = self.result(sums)
        expected = scipy_stats.chisquare([1000, 800], [900, 900]).pvalue
        assert result.srm_p_value == pytest.approx(expected)
        assert result.srm_flagged

    def test_no_data_gives_units_zero_and_coded_errors(self) -> None:
        document = self.result({}).to_json()
        assert document["srm_p_value"] is None and document["srm_error"] == "empty_variation"
        for metric in document["metrics"]:
            for variant in metric["variants"]:
                assert variant["units"] == 0 and variant["significant"] is False
                assert variant["error"] == "empty_variation"
                assert variant["mean"] is None
        json.dumps(document, allow_nan=False)  # no NaN leaks into the contract

    def test_nobody_converted_is_a_coded_error(self) -> None:
        sums = {"conversion": [VariationSums(0, 50, 0.0, 0.0), VariationSums(1, 50, 0.0, 0.0)]}
        treatment = self.result(sums).to_json()["metrics"][0]["variants"][1]
        assert treatment["error"] is not None and treatment["estimate"] is None
        assert math.isclose(treatment["mean"], 0.0)
