"""jobs.unit_values.plan and jobs.results.metric_sql.unit_values as text: the layout, its key, the SQL."""

from __future__ import annotations

import re

import pytest

from assignment.metrics_catalog import DEFAULT_METRICS, MetricDefinition, metric_from_dict
from jobs.results.batch import batch_plan
from jobs.results.metric_sql.unit_values import (
    build_parameters,
    build_sql,
    covariate_value,
    read_sql,
    side_value,
)
from jobs.results.rows import VariationSums
from jobs.unit_values import UnitValuesSettings
from jobs.unit_values.plan import CovariateSlot, UnitValuesPlan, unit_values_plan

PLACEHOLDER = re.compile(r"\{(\w+):([^}]+)\}")
CONVERSION, REVENUE, PAGEVIEWS = DEFAULT_METRICS
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1h"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
CATALOG = {m.name: m for m in (*DEFAULT_METRICS, ORDERS, AOV)}
METRICS = [CONVERSION, REVENUE, PAGEVIEWS, ORDERS, AOV]


def layout(
    cuped: bool = False, days: float = 14.0, metrics: list[MetricDefinition] | None = None
) -> UnitValuesPlan:
    return unit_values_plan(batch_plan(metrics or METRICS, CATALOG), cuped=cuped, covariate_days=days)


def test_cells_summed_slots_and_side_expressions() -> None:
    plan = layout()
    # sides: purchase binary, purchase sum, pageview count, purchase count within 1 h
    assert plan.cells == (("purchase", 0.0), ("pageview", 0.0), ("purchase", 3600.0))
    assert plan.summed == (0,)  # only revenue reads a total: purchase without window
    assert plan.event_names == ("purchase", "pageview")
    assert [side_value(plan, k) for k in range(4)] == [
        "toFloat64(counts[1] > 0)",
        "totals[1]",
        "toFloat64(counts[2])",
        "toFloat64(counts[3])",
    ]
    assert plan.covariate_events == () and plan.adjusted == {}


def test_cuped_adds_one_covariate_cell_per_event_and_skips_ratios() -> None:
    plan = layout(cuped=True, days=7.0)
    assert plan.covariate_events == ("purchase", "pageview")
    assert plan.covariate_seconds == 7 * 86400.0
    assert set(plan.adjusted) == {"conversion", "revenue", "pageviews", "orders"}  # not aov (a ratio)
    assert plan.covariate_slots[plan.adjusted["revenue"]] == CovariateSlot(1, 0, "sum")
    assert plan.covariate_slots[plan.adjusted["orders"]] == CovariateSlot(3, 0, "count")
    assert covariate_value(CovariateSlot(1, 0, "sum")) == "covariate_totals[1]"
    assert covariate_value(CovariateSlot(0, 0, "binary")) == "toFloat64(covariate_counts[1] > 0)"


def test_the_key_changes_with_what_the_rows_hold_and_only_then() -> None:
    assert layout().key == layout().key
    assert len(layout().key) == 16
    hours = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "2h"})
    changed = layout(metrics=[CONVERSION, REVENUE, PAGEVIEWS, hours])
    assert changed.key != layout().key  # a changed window: a new key, a full build
    assert layout(cuped=True).key != layout().key
    assert layout(cuped=True, days=7.0).key != layout(cuped=True, days=14.0).key
    assert layout(cuped=False, days=7.0).key == layout(cuped=False, days=14.0).key  # no covariate: same rows


def test_build_sql_binds_every_value_and_is_incremental_only_when_asked() -> None:
    plan = layout(cuped=True)
    full, incremental = build_sql(plan, incremental=False), build_sql(plan, incremental=True)
    assert "changed" not in full and "watermark" not in full
    assert incremental.count("IN (SELECT unit_id FROM changed)") == 4  # units, attributes, events, covariates
    for source in ("xp.attributed_events", "xp.exposures", "xp.events"):
        assert source in incremental.split("units AS")[0]  # a change in any source marks the unit
    for sql in (full, incremental):
        assert "purchase" not in sql and "3600" not in sql  # values are parameters, not text
        assert "FROM xp.attributed_events AS a FINAL" in sql
    bound = build_parameters(plan, experiment="e", version=5, watermark="2026-11-26")
    used = {name for name, _type in PLACEHOLDER.findall(incremental)}
    assert used <= set(bound)
    assert bound["cell_windows"] == [0.0, 0.0, 3600.0] and bound["plan_key"] == plan.key


def test_read_sql_reads_the_newest_rows_of_eligible_units() -> None:
    sql = read_sql(layout(cuped=True))
    assert "FROM xp.unit_values FINAL" in sql and "AND eligible" in sql
    assert "covariate_units" in sql and "sum(v[2] * v[4])" in sql  # aov: revenue × orders
    assert "covariate_units" not in read_sql(layout())


def test_covariate_rows_add_up_over_segments() -> None:
    plan = layout(cuped=True, metrics=[PAGEVIEWS])
    row = {"units": 2, "sums": [3.0], "squares": [5.0], "covariate_sums": [1.0], "covariate_squares": [1.0]}
    rows = [
        {**row, "segment": "de", "variation_id": 1, "covariate_crosses": [2.0], "covariate_units": [1]},
        {**row, "segment": "us", "variation_id": 1, "covariate_crosses": [4.0], "covariate_units": [1]},
        {**row, "segment": "us", "variation_id": 0, "covariate_crosses": [0.0], "covariate_units": [0]},
    ]
    found = plan.decode_covariates(rows)["pageviews"]
    assert [s.variation_id for s in found] == [0, 1]
    assert found[1] == VariationSums(1, 4, 6.0, 10.0, 0.0, 0.0, 0.0, True, 2.0, 2.0, 6.0, 2)


def test_the_setting_turns_unit_values_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_RESULTS_UNIT_VALUES", raising=False)
    assert UnitValuesSettings().results_unit_values is True
    monkeypatch.setenv("XP_RESULTS_UNIT_VALUES", "false")
    monkeypatch.setenv("XP_RESULTS_UNIT_VALUES_MARGIN_SECONDS", "5")
    settings = UnitValuesSettings()
    assert settings.results_unit_values is False and settings.results_unit_values_margin_seconds == 5.0
