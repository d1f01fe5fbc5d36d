"""Quantile metrics in the catalog (``type: quantile``) and in the pure results path (decision 0083)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from assignment.metrics_catalog import (
    DEFAULT_METRICS,
    MetricType,
    QuantilePer,
    metric_from_dict,
    resolve_metrics,
)
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.analysis import analyze_experiment
from jobs.results.batch import batch_plan
from jobs.stats.quantiles import quantile_statistic
from schemas.records import ExperimentStatus
from xpcore.errors import ValidationError

P90 = {"name": "latency_p90", "type": "quantile", "event": "request", "quantile": 0.9}


def test_a_quantile_metric_parses_with_defaults_and_round_trips() -> None:
    metric = metric_from_dict(P90)
    assert metric.type is MetricType.QUANTILE and metric.quantile == 0.9 and metric.per is QuantilePer.UNIT
    assert (metric.aggregation, metric.value_field, metric.window_hours) == ("sum", "value", 72.0)
    assert metric_from_dict(metric.to_dict()) == metric
    per_event = metric_from_dict({**P90, "per": "event", "value_field": "properties.ms", "window": "2h"})
    assert per_event.per is QuantilePer.EVENT and per_event.value_field == "properties.ms"


def test_other_metrics_store_the_same_dict_as_before() -> None:
    for metric in DEFAULT_METRICS:
        assert "quantile" not in metric.to_dict() and "per" not in metric.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantile": 1.5}, "quantile: required"),
        ({"quantile": True}, "quantile: required"),
        ({"quantile": None}, "quantile: required"),
        ({"per": "session"}, "per: must be unit or event"),
        ({"per": "event", "aggregation": "count"}, "per-event quantile"),
        ({"value_field": "nope"}, "value_field"),
        ({"type": "mean"}, "only for type: quantile"),
        ({"window": "soon"}, "window"),
    ],
)
def test_bad_quantile_metrics_are_rejected(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        metric_from_dict({**P90, **change})


def test_a_ratio_of_a_quantile_is_rejected() -> None:
    p90 = metric_from_dict(P90)
    ratio = metric_from_dict({"name": "r", "numerator": "latency_p90", "denominator": "pageviews"})
    with pytest.raises(ValidationError, match="is a quantile metric"):
        resolve_metrics(["r"], {"latency_p90": p90, "r": ratio}, "experiment 'x'")


def test_quantile_metrics_stay_out_of_the_summed_scan() -> None:
    p90 = metric_from_dict(P90)
    plan = batch_plan([*DEFAULT_METRICS, p90], {m.name: m for m in (*DEFAULT_METRICS, p90)})
    assert "latency_p90" not in plan.slots and p90 not in plan.others


def _experiment() -> ExperimentSpec:
    return ExperimentSpec(
        key="x",
        name="x",
        status=ExperimentStatus.RUNNING,
        feature_key="x",
        variations=(VariationSpec(0, "a", "A", 0.5), VariationSpec(1, "b", "B", 0.5)),
        metrics=MetricsSpec(primary=("latency_p90",), definitions=(metric_from_dict(P90),)),
    )


def test_analysis_of_an_experiment_with_only_a_quantile_metric() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    stats = [
        quantile_statistic(rng.lognormal(1, 1, 2000), 0.9),
        quantile_statistic(rng.lognormal(1, 1, 2100), 0.9),
    ]
    now = datetime(2026, 12, 5, tzinfo=UTC)
    result = analyze_experiment(
        _experiment(),
        {},
        computed_at=now,
        since=now,
        until=now,
        plan=AnalysisPlan(method="sequential"),
        quantiles={"latency_p90": stats},
    )
    metric = result.to_json()["metrics"][0]
    assert (metric["type"], metric["quantile"], metric["per"]) == ("quantile", 0.9, "unit")
    assert [v["units"] for v in metric["variants"]] == [2000, 2100]
    assert metric["variants"][1]["p_value"] is not None and metric["variants"][1]["error"] is None
    assert result.srm_p_value is not None and result.srm_error is None
    empty = analyze_experiment(_experiment(), {}, computed_at=now, since=now, until=now).to_json()
    assert empty["metrics"][0]["variants"][1]["error"] == "empty_variation"


def test_the_results_table_names_the_quantile() -> None:
    import numpy as np
    from rich.console import Console

    from xpstream.cli.results import _metric_table

    rng = np.random.default_rng(4)
    stats = [quantile_statistic(rng.lognormal(1, 1, 500), 0.9) for _ in range(2)]
    now = datetime(2026, 12, 5, tzinfo=UTC)
    result = analyze_experiment(
        _experiment(), {}, computed_at=now, since=now, until=now, quantiles={"latency_p90": stats}
    )
    console = Console(record=True, width=160)
    console.print(_metric_table(result.metrics[0], 0.05))
    assert "latency_p90 (p90 per unit, primary)" in console.export_text()
