"""The metric catalog: defaults, user-defined metrics (YAML), ratio parts, known event names."""

from __future__ import annotations

from pathlib import Path

import pytest

from assignment.authoring import load_registry_file
from assignment.metrics_catalog import (
    DEFAULT_METRICS,
    DEFAULT_WINDOW_HOURS,
    Aggregation,
    MetricType,
    known_event_names,
    metric_from_dict,
    metric_roles,
    metrics_for,
)
from assignment.registry import RegistrySnapshot
from xpcore.errors import ValidationError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "experiments.yaml"


def test_defaults_apply_when_an_experiment_names_none() -> None:
    snapshot = load_registry_file(EXAMPLE).snapshot()
    spec = snapshot.experiments["search-ranking-v2"]
    assert [m.name for m in metrics_for(spec)] == ["conversion", "revenue", "pageviews"]
    conversion, revenue, pageviews = DEFAULT_METRICS
    assert (conversion.type, conversion.event_name, conversion.aggregation) == (
        "binomial",
        "purchase",
        "binary",
    )
    assert (revenue.type, revenue.aggregation, revenue.value_field) == ("mean", "sum", "value")
    assert (pageviews.event_name, pageviews.aggregation) == ("pageview", "count")
    assert conversion.window_hours is None  # whole experiment after first exposure


def test_named_metrics_in_role_order_with_ratio_parts_last() -> None:
    spec = load_registry_file(EXAMPLE).snapshot().experiments["checkout-button"]
    names = [m.name for m in metrics_for(spec)]
    assert names == [
        "conversion",
        "revenue",
        "add_to_cart",
        "average_order_value",
        "refund_rate",
        "pageviews",
        "orders",
    ]
    roles = metric_roles(spec)
    assert [m.name for m in roles["guardrails"]] == ["refund_rate", "pageviews"]
    by_name = {m.name: m for m in metrics_for(spec)}
    assert by_name["add_to_cart"].window_hours == 24
    assert by_name["refund_rate"].window_hours == 14 * 24 and by_name["refund_rate"].higher_is_better is False
    assert by_name["orders"].window_hours == DEFAULT_WINDOW_HOURS
    ratio = by_name["average_order_value"]
    assert (ratio.type, ratio.numerator, ratio.denominator) == ("ratio", "revenue", "orders")


def test_known_event_names() -> None:
    assert known_event_names() == {"purchase", "pageview"}
    assert known_event_names(RegistrySnapshot()) == {"purchase", "pageview"}
    snapshot = load_registry_file(EXAMPLE).snapshot()
    assert known_event_names(snapshot) == {"purchase", "pageview", "add_to_cart", "refund"}
    assert known_event_names([metric_from_dict({"name": "x", "event": "signup"})]) == {
        "purchase",
        "pageview",
        "signup",
    }


def test_stored_form_round_trips() -> None:
    metric = metric_from_dict(
        {
            "name": "u",
            "event": "view",
            "aggregation": "unique",
            "value_field": "properties.sku",
            "window": "90m",
        }
    )
    assert metric.aggregation is Aggregation.UNIQUE and metric.type is MetricType.MEAN
    assert metric.window_hours == 1.5
    assert metric_from_dict(metric.to_dict()) == metric
    ratio = metric_from_dict({"name": "r", "numerator": "a", "denominator": "b"})
    assert metric_from_dict(ratio.to_dict()) == ratio


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"event": "x"}, "m: name: required"),
        (
            {"name": "u", "event": "x", "aggregation": "unique"},
            "m 'u': value_field: required for aggregation unique",
        ),
        ({"name": "w", "event": "x", "window": "soon"}, "m 'w': window: 'soon' is not hours"),
        ({"name": "w", "event": "x", "window": -3}, "m 'w': window: must be > 0"),
        (
            {"name": "v", "event": "x", "value_field": "amount"},
            "m 'v': value_field: must be `value` or `properties.NAME`",
        ),
        ({"name": "r", "numerator": "a"}, "m 'r': denominator: a ratio metric needs a metric name here"),
        ({"name": "e"}, "m 'e': event: required"),
        (
            {"name": "t", "event": "x", "aggregation": "binary", "type": "mean"},
            "m 't': type: 'mean' does not match",
        ),
    ],
)
def test_metric_validation(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        metric_from_dict(spec, "m")
    assert str(caught.value).startswith(message), str(caught.value)
