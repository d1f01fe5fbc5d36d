"""jobs.results.batch and the generated results queries as text: which metrics share one scan, and how."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from jobs.results.batch import batch_plan
from jobs.results.metric_sql.scan import cuped_parameters, metric_parameters, metric_sums_sql

PLACEHOLDER = re.compile(r"\{(\w+):([^}]+)\}")
CONVERSION, REVENUE, PAGEVIEWS = DEFAULT_METRICS
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1h"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
COLORS = metric_from_dict(
    {"name": "colors", "event": "view", "aggregation": "unique", "value_field": "properties.color"}
)
SPEND = metric_from_dict(
    {"name": "spend", "event": "purchase", "aggregation": "sum", "value_field": "properties.amount"}
)
CATALOG = {m.name: m for m in (*DEFAULT_METRICS, ORDERS, AOV, COLORS, SPEND)}
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_one_slot_per_distinct_side_and_a_cross_per_ratio() -> None:
    plan = batch_plan([CONVERSION, REVENUE, PAGEVIEWS, ORDERS, AOV, COLORS], CATALOG)
    assert plan.sides == (
        ("purchase", "binary", 0.0),
        ("purchase", "sum", 0.0),
        ("pageview", "count", 0.0),
        ("purchase", "count", 3600.0),
    )
    # aov reuses revenue's and orders' slots; its cross product is the only one
    assert plan.slots["aov"] == (1, 3, 0) and plan.crosses == ((1, 3),)
    assert plan.slots["revenue"] == (1, None, None)
    assert [m.name for m in plan.others] == ["colors"]  # unique and property fields: per-metric query
    parameters = plan.sql_parameters(experiment="e", since=NOW, until=NOW, dimension="country")
    assert parameters["event_names"] == ["purchase", "pageview"]
    # one cell per distinct (event, window): binary and sum of purchase share the first
    assert parameters["cell_events"] == ["purchase", "pageview", "purchase"]
    assert parameters["cell_windows"] == [0.0, 0.0, 3600.0]
    assert "sum(v2 * v4)" in plan.sql()  # aov's cross product, 1-based sides in SQL


def test_a_ratio_with_a_property_part_goes_to_the_per_metric_query() -> None:
    ratio = metric_from_dict({"name": "spend_per_order", "numerator": "spend", "denominator": "orders"})
    plan = batch_plan([ratio, SPEND], {**CATALOG, ratio.name: ratio})
    assert plan.sides == () and [m.name for m in plan.others] == ["spend_per_order", "spend"]


def test_decode_splits_rows_into_metrics_and_segments() -> None:
    plan = batch_plan([REVENUE, ORDERS, AOV], CATALOG)
    rows = [
        {"segment": "de", "variation_id": 1, "units": 5, "sums": [10.0, 3.0], "squares": [40.0, 5.0],
         "crosses": [12.0]},
    ]  # fmt: skip
    decoded = plan.decode(rows)
    ((segment, aov),) = decoded["aov"]
    assert segment == "de" and (aov.units, aov.sum_a, aov.sum_b, aov.cross_sum) == (5, 10.0, 3.0, 12.0)
    assert aov.sum_a_squares == 40.0 and aov.sum_b_squares == 5.0
    ((_, orders),) = decoded["orders"]
    assert (orders.sum_a, orders.sum_a_squares, orders.sum_b) == (3.0, 5.0, 0.0)


def placeholders(sql: str) -> set[str]:
    found: dict[str, set[str]] = {}
    for name, type_ in PLACEHOLDER.findall(sql):
        found.setdefault(name, set()).add(type_)
    assert all(len(types) == 1 for types in found.values()), found
    return set(found)


def test_every_placeholder_of_the_per_metric_queries_is_bound() -> None:
    bound = metric_parameters(REVENUE, CATALOG, experiment="e", since=NOW, until=NOW)
    assert placeholders(metric_sums_sql()) == set(bound)
    assert placeholders(metric_sums_sql(segment=True)) == {*bound, "dimension"}
    assert placeholders(metric_sums_sql(cuped=True)) == set(cuped_parameters(bound, 14.0))
    for sql in (metric_sums_sql(), metric_sums_sql(segment=True), metric_sums_sql(cuped=True)):
        assert sql.count("{") == len(PLACEHOLDER.findall(sql))  # nothing formatted in


def test_the_population_rules_are_the_same_in_every_results_query() -> None:
    plan = batch_plan([REVENUE, AOV], CATALOG)
    for sql in (plan.sql(), metric_sums_sql(segment=True), metric_sums_sql(cuped=True)):
        sql = " ".join(sql.split())
        assert (
            "HAVING NOT (min(min_variation_id) != max(max_variation_id)) AND NOT (max(overridden) != 0)"
            in sql
        )
        assert "xp.attributed_events AS a FINAL" in sql
    cuped = " ".join(metric_sums_sql(cuped=True).split())
    assert "e.occurred_at < u.first_exposure" in cuped  # the covariate is strictly before exposure
    assert "{covariate_seconds:Float64} * 1000" in cuped


def test_sides_over_the_same_event_and_window_share_one_per_unit_count() -> None:
    conversion_72h = metric_from_dict({"name": "bought", "event": "purchase", "aggregation": "binary"})
    count_72h = metric_from_dict({"name": "purchases", "event": "purchase", "aggregation": "count"})
    sum_72h = metric_from_dict({"name": "spent", "event": "purchase", "aggregation": "sum"})
    catalog = {**CATALOG, **{m.name: m for m in (conversion_72h, count_72h, sum_72h)}}
    plan = batch_plan([conversion_72h, count_72h, sum_72h, ORDERS, PAGEVIEWS], catalog)
    assert len(plan.sides) == 5
    assert plan.cells == (("purchase", 72 * 3600.0), ("purchase", 3600.0), ("pageview", 0.0))
    sql = plan.sql()
    assert sql.count("countIf(") == 3  # one per cell, not one per side
    assert sql.count("sumIf(") == 1  # only the cell a `sum` side reads
    assert "toFloat64(c1 > 0) AS v1, toFloat64(c1) AS v2, t1 AS v3, toFloat64(c2) AS v4" in sql


def test_every_placeholder_of_the_generated_query_is_bound() -> None:
    plan = batch_plan([CONVERSION, REVENUE, PAGEVIEWS, ORDERS, AOV], CATALOG)
    sql = plan.sql()
    parameters = plan.sql_parameters(experiment="e", since=NOW, until=NOW, dimension="country")
    assert placeholders(sql) == set(parameters)
    # conversion (binary) and revenue (sum) both read purchases without a window: one cell
    assert parameters["cell_events"] == ["purchase", "pageview", "purchase"]
    assert parameters["cell_windows"] == [0.0, 0.0, 3600.0]
    assert "sum(v2 * v4)" in sql  # aov: revenue × orders, per unit
