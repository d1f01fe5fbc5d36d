"""The cluster DDL generator, checked as text: every migration table gets a Replicated local table and a
Distributed table, sharded by a function of its sorting key; views wired to local tables; unknown
statements refused; the CLI refuses a hostile cluster name."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from xpcore.errors import ValidationError
from xpcore.warehouse.cluster_ddl import LOCAL_SUFFIX, cluster_ddl, render_script, validate_cluster_name
from xpcore.warehouse.migrations import Migration, MigrationError, discover_migrations

MIGRATIONS = discover_migrations()
STATEMENTS = cluster_ddl(MIGRATIONS, "xp_prod")


def migration_tables() -> dict[str, tuple[str, str]]:
    """Every CREATE TABLE of sql/migrations: name → (engine, ORDER BY text)."""
    found = {}
    for migration in MIGRATIONS:
        for match in re.finditer(
            r"CREATE TABLE IF NOT EXISTS xp\.(\w+)\s*\(.*?\)\s*ENGINE\s*=\s*(\w+)"
            r".*?ORDER BY\s+(\([^()]*\)|\w+)",
            migration.sql,
            re.DOTALL,
        ):
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


def of_kind(kind: str) -> list[str]:
    return [s.sql for s in STATEMENTS if s.kind == kind]


def test_every_table_has_a_replicated_local_table_and_a_distributed_one() -> None:
    tables = migration_tables()
    assert len(tables) >= 15
    local = {re.search(r"xp\.(\w+)_local ON CLUSTER", sql).group(1): sql for sql in of_kind("local")}  # type: ignore[union-attr]
    distributed = {re.search(r"xp\.(\w+) ON CLUSTER", sql).group(1): sql for sql in of_kind("distributed")}  # type: ignore[union-attr]
    assert set(local) == set(tables) == set(distributed)
    for name, (engine, _) in tables.items():
        sql = local[name]
        path = f"'/clickhouse/tables/{{shard}}/xp/{name}{LOCAL_SUFFIX}', '{{replica}}'"
        assert f"ENGINE = Replicated{engine}({path}" in sql, name
        assert "non_replicated_deduplication_window" not in sql
        assert f"Distributed(xp_prod, xp, {name}{LOCAL_SUFFIX}, cityHash64(" in distributed[name]
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/xp/exposures_local', '{replica}', "
        "ingested_at)" in local["exposures"]
    )
    assert "replicated_deduplication_window = 1000" in local["events"]


def test_shard_key_is_the_unit_or_the_sorting_key() -> None:
    for name, (_, order_by) in migration_tables().items():
        sql = next(s for s in of_kind("distributed") if f"xp.{name} ON CLUSTER" in s)
        key = re.search(r"cityHash64\(([^()]*)\)\)", sql).group(1)  # type: ignore[union-attr]
        key_columns = [c.strip() for c in key.split(",")]
        order_columns = [c.strip() for c in order_by.strip("()").split(",")]
        # rows a Replacing/Aggregating engine collapses share the sorting key, so they share a shard
        assert set(key_columns) <= set(order_columns), name
    unit_tables = [s for s in of_kind("distributed") if "cityHash64(unit_id)" in s]
    assert {re.search(r"xp\.(\w+) ON", s).group(1) for s in unit_tables} >= {  # type: ignore[union-attr]
        "exposures",
        "events",
        "attributed_events",
        "unit_exposures",
        "unit_metric_state",
        "unit_values",
    }


def test_views_read_and_write_local_tables() -> None:
    views = of_kind("view")
    assert len(views) == sum(m.sql.count("CREATE MATERIALIZED VIEW") for m in MIGRATIONS)
    for sql in views:
        assert re.search(r"TO xp\.\w+_local AS", sql), sql
        sources = re.findall(r"\bFROM xp\.(\w+)", sql)
        assert sources and all(s.endswith(LOCAL_SUFFIX) for s in sources), sql


def test_column_alters_reach_both_tables_and_mutations_only_the_local_one() -> None:
    local = of_kind("alter_local")
    distributed = of_kind("alter_distributed")
    assert any("ADD COLUMN IF NOT EXISTS original_size" in s for s in local)
    assert any("ADD COLUMN IF NOT EXISTS original_size" in s for s in distributed)
    updates = [s for s in local + distributed if "UPDATE original_size" in s]
    assert len(updates) == 1 and updates[0].startswith("ALTER TABLE xp.dead_letters_local ON CLUSTER xp_prod")
    # a view target's deduplication window (0015): the local Replicated table's name for it, local only
    windows = [s for s in local + distributed if "MODIFY SETTING" in s and "unit_metric_state" in s]
    assert len(windows) == 1 and windows[0].startswith("ALTER TABLE xp.unit_metric_state_local ON CLUSTER")
    assert "MODIFY SETTING replicated_deduplication_window = 1000" in windows[0]


def test_everything_but_run_once_statements_is_on_cluster() -> None:
    for statement in STATEMENTS:
        first_line = statement.sql.splitlines()[0]
        if statement.kind == "data" or statement.sql.startswith("INSERT INTO xp.schema_migrations"):
            assert "ON CLUSTER" not in first_line
        else:
            assert "ON CLUSTER xp_prod" in first_line, first_line


def test_schema_migrations_records_every_migration_with_its_checksum() -> None:
    inserts = [s.sql for s in STATEMENTS if s.sql.startswith("INSERT INTO xp.schema_migrations")]
    assert len(inserts) == len(MIGRATIONS)
    for migration, sql in zip(MIGRATIONS, inserts, strict=True):
        assert f"SELECT {migration.version}, '{migration.name}', '{migration.checksum}'" in sql
    create = next(s.sql for s in STATEMENTS if "CREATE TABLE IF NOT EXISTS xp.schema_migrations" in s.sql)
    assert "ReplicatedMergeTree('/clickhouse/tables/all/xp/schema_migrations', '{replica}')" in create


def test_from_version_emits_only_later_migrations_but_knows_earlier_tables() -> None:
    up_to_10 = [m for m in MIGRATIONS if m.version <= 10]  # 0010 alters a table an earlier one created
    later = cluster_ddl(up_to_10, "c", from_version=10)
    labels = {s.migration for s in later}
    assert labels == {"0010_dead_letter_original_digest", "bookkeeping"}
    assert not [s for s in later if s.kind == "local"]


def test_an_unknown_statement_or_engine_is_refused() -> None:
    odd = Migration(99, "odd", "CREATE DATABASE IF NOT EXISTS xp;\nDROP TABLE xp.events")
    with pytest.raises(MigrationError, match=r"99_odd.*DROP TABLE"):
        cluster_ddl([odd], "c")
    log = Migration(
        98,
        "log",
        "CREATE DATABASE IF NOT EXISTS xp;\nCREATE TABLE IF NOT EXISTS xp.t (a String) ENGINE = Log",
    )
    with pytest.raises(MigrationError, match="engine Log"):
        cluster_ddl([log], "c")


@pytest.mark.parametrize("name", ["", "a b", "x;DROP TABLE xp.events", "x`y", "1abc", "a" * 80, "c{shard}"])
def test_hostile_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_cluster_name(name)


def test_the_script_has_one_terminated_statement_per_entry() -> None:
    script = render_script(STATEMENTS, "xp_prod", MIGRATIONS)
    assert script.count(";\n") == len(STATEMENTS)
    assert "-- run once (not ON CLUSTER)" in script


def run_xp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_prints_the_script_and_json() -> None:
    script = run_xp("warehouse", "ddl", "--cluster", "xp_prod")
    assert script.returncode == 0, script.stderr
    assert script.stdout == render_script(STATEMENTS, "xp_prod", MIGRATIONS)
    document = json.loads(run_xp("warehouse", "ddl", "--cluster", "xp_prod", "--format", "json").stdout)
    assert [s["sql"] for s in document["statements"]] == [s.sql for s in STATEMENTS]
    refused = run_xp("warehouse", "ddl", "--cluster", "x;DROP DATABASE xp")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: cluster name") and "Traceback" not in refused.stderr
