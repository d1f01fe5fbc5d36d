"""The ETL's SQL as text and its parameters: bound placeholders only, every one supplied. No database."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.etl import QUERIES, bind, event_metrics, metric_parameters
from schemas.records import ExperimentStatus
from xpcore.errors import ValidationError
from xpcore.warehouse.migrations import discover_migrations, load_query
from xpcore.warehouse.sqltext import placeholders, split_statements

ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1d"})
PLANS = metric_from_dict(
    {"name": "plans", "event": "checkout", "aggregation": "unique", "value_field": "properties.plan"}
)
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})

EXPECTED_PLACEHOLDERS = {
    "etl_delete_unit_metrics": {"experiment", "since_day", "until_day"},
    "etl_delete_daily_metrics": {"experiment", "since_day", "until_day"},
    "etl_unit_metrics": {
        "experiment", "metric", "event_name", "aggregation", "property", "window_seconds",
        "covariate_seconds", "since", "until", "computed_at",
    },
    "etl_daily_metrics": {
        "experiment", "metric", "event_name", "aggregation", "property", "window_seconds",
        "since_day", "until_day", "computed_at",
    },
    "etl_range_rows": {"experiments", "since", "until", "since_day", "until_day"},
}  # fmt: skip


def spec(metrics: MetricsSpec) -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(VariationSpec(0, "a", "A", 0.5), VariationSpec(1, "b", "B", 0.5)),
        metrics=metrics,
    )


@pytest.mark.parametrize("name", QUERIES)
def test_queries_have_a_header_and_only_bound_parameters(name: str) -> None:
    sql = load_query(name)
    assert sql.startswith(f"-- {name}:")
    assert "grain:" in sql and "engine:" in sql
    assert len(split_statements(sql)) == 1
    assert set(placeholders(sql)) == EXPECTED_PLACEHOLDERS[name]
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    braces = re.findall(r"\{[^}]*\}", code)
    assert braces and all(re.fullmatch(r"\{[a-z_]+:[A-Za-z0-9(), ']+\}", b) for b in braces), braces
    assert "%s" not in code and "%(" not in code


@pytest.mark.parametrize("name", ["etl_delete_unit_metrics", "etl_delete_daily_metrics"])
def test_deletes_are_synchronous_mutations(name: str) -> None:
    sql = load_query(name)
    assert "ALTER TABLE" in sql and "SETTINGS mutations_sync = 2" in sql


def test_the_migration_creates_both_tables() -> None:
    migration = next(m for m in discover_migrations() if m.name == "etl_rollups")
    assert migration.version == 5
    text = " ".join(migration.statements)
    assert "xp.unit_metrics" in text and "xp.daily_metrics" in text


def test_event_metrics_are_the_defaults_without_named_metrics() -> None:
    assert event_metrics(spec(MetricsSpec())) == list(DEFAULT_METRICS)


def test_ratio_metrics_are_rolled_up_through_their_parts() -> None:
    metrics = spec(MetricsSpec(primary=("aov",), secondary=("plans",), definitions=(ORDERS, PLANS, AOV)))
    assert [m.name for m in event_metrics(metrics)] == ["plans", "revenue", "orders"]


def test_metric_parameters() -> None:
    assert metric_parameters(ORDERS) == {
        "metric": "orders",
        "event_name": "purchase",
        "aggregation": "count",
        "property": "",
        "window_seconds": 86400.0,
    }
    assert metric_parameters(PLANS)["property"] == "plan"
    revenue = next(m for m in DEFAULT_METRICS if m.name == "revenue")
    assert metric_parameters(revenue) == {
        "metric": "revenue",
        "event_name": "purchase",
        "aggregation": "sum",
        "property": "",
        "window_seconds": 0.0,
    }
    with pytest.raises(ValidationError, match="not an event metric"):
        metric_parameters(AOV)


def test_bind_supplies_exactly_the_placeholders() -> None:
    sql = load_query("etl_delete_daily_metrics")
    given = {
        "experiment": "exp",
        "since": datetime(2026, 11, 1, tzinfo=UTC),
        "since_day": date(2026, 11, 1),
        "until_day": date(2026, 11, 2),
        "metric": "ignored",
    }
    assert set(bind(sql, given)) == {"experiment", "since_day", "until_day"}
    with pytest.raises(ValidationError, match="until_day"):
        bind(sql, {"experiment": "exp", "since_day": date(2026, 11, 1)})
