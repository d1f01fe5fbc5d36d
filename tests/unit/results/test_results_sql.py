"""The per-metric results query and sql/migrations/0004_results.sql as text (no database needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from assignment.metrics_catalog import DEFAULT_METRICS
from jobs.results.metric_sql.scan import metric_parameters, metric_sums_sql
from jobs.results.snapshots import results_table
from xpcore.warehouse.migrations import discover_migrations

PLACEHOLDER = re.compile(r"\{(\w+):([^}]+)\}")


def placeholders(sql: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, type_ in PLACEHOLDER.findall(sql):
        found.setdefault(name, set()).add(type_)
    return found


def test_every_placeholder_is_bound_and_every_binding_is_used() -> None:
    sql = metric_sums_sql()
    found = placeholders(sql)
    bound = metric_parameters(
        DEFAULT_METRICS[0],
        {},
        experiment="e",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime.now(UTC),
    )
    assert set(found) == set(bound)
    assert all(len(types) == 1 for types in found.values()), found  # one type per parameter
    # nothing is formatted in: braces only appear as typed placeholders
    assert sql.count("{") == len(PLACEHOLDER.findall(sql))


def test_population_excludes_overridden_and_multiply_exposed_units() -> None:
    sql = " ".join(metric_sums_sql().split())
    assert "HAVING NOT (min(min_variation_id) != max(max_variation_id))" in sql
    assert "NOT (max(overridden) != 0)" in sql
    assert "argMinMerge(first_variation_id)" in sql
    assert "FROM eligible AS e LEFT JOIN per_unit" in sql  # units without events count as 0
    assert "xp.attributed_events AS a FINAL" in sql


def test_results_migration_columns_match_the_arrow_rows() -> None:
    migration = next(m for m in discover_migrations() if m.name == "results")
    body = migration.sql.split("CREATE TABLE IF NOT EXISTS xp.results", 1)[1].split("ENGINE", 1)[0]
    columns = [line.split()[0] for line in body.splitlines() if line.strip() and line.strip() not in "()"]
    assert columns == results_table([]).schema.names
    assert "computed_at" in migration.sql.split("ORDER BY", 1)[1].splitlines()[0]
