"""With XP_CLICKHOUSE_CLUSTER, the server adapter sends mutations, OPTIMIZE and TRUNCATE to the local tables
ON CLUSTER (a Distributed table refuses them), and pending migrations are refused, never applied."""

from __future__ import annotations

import pytest

from tests.unit.test_warehouse_sql import RecordingClient
from xpcore.warehouse.clickhouse import ClickHouseWarehouse
from xpcore.warehouse.cluster_ddl import pending_on_cluster, route_statement
from xpcore.warehouse.migrations import discover_migrations, load_query


@pytest.mark.parametrize(
    ("sql", "routed"),
    [
        ("OPTIMIZE TABLE xp.unit_values FINAL", "OPTIMIZE TABLE xp.unit_values_local ON CLUSTER prod FINAL"),
        ("TRUNCATE TABLE IF EXISTS xp.`events`", "TRUNCATE TABLE IF EXISTS xp.events_local ON CLUSTER prod"),
        (
            "ALTER TABLE xp.daily_metrics DELETE WHERE day < {d:Date} SETTINGS mutations_sync = 2",
            "ALTER TABLE xp.daily_metrics_local ON CLUSTER prod DELETE WHERE day < {d:Date} "
            "SETTINGS mutations_sync = 2",
        ),
    ],
)
def test_mutations_go_to_the_local_tables_on_cluster(sql: str, routed: str) -> None:
    assert route_statement(sql, "prod") == routed


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO xp.events SELECT * FROM xp.events",
        "SELECT 1",
        "ALTER TABLE xp.schema_migrations DELETE WHERE version = 1",  # replicated, not sharded
        "ALTER TABLE other.t DELETE WHERE 1",
    ],
)
def test_other_statements_are_unchanged(sql: str) -> None:
    assert route_statement(sql, "prod") == sql


def test_the_etl_delete_query_is_routed_with_its_parameters() -> None:
    routed = route_statement(load_query("etl_delete_unit_metrics"), "prod")
    assert routed.startswith("ALTER TABLE xp.unit_metrics_local ON CLUSTER prod\nDELETE WHERE")
    assert "{experiment:String}" in routed and "mutations_sync = 2" in routed


def test_the_adapter_routes_only_with_a_cluster() -> None:
    client = RecordingClient()
    ClickHouseWarehouse(client, "http://ch:8123", cluster="prod").command(
        "OPTIMIZE TABLE xp.unit_values FINAL"
    )
    ClickHouseWarehouse(client, "http://ch:8123").command("OPTIMIZE TABLE xp.unit_values FINAL")
    sent = [call[1][0] for call in client.calls]
    assert sent == [
        "OPTIMIZE TABLE xp.unit_values_local ON CLUSTER prod FINAL",
        "OPTIMIZE TABLE xp.unit_values FINAL",
    ]


def test_pending_migrations_on_a_cluster_are_an_error_naming_the_command() -> None:
    migrations = discover_migrations()
    assert pending_on_cluster([], "prod") is None
    error = pending_on_cluster(migrations[-2:], "prod")
    assert error is not None
    assert f"--from-version {migrations[-2].version}" in str(error) and "2 migration(s)" in str(error)
