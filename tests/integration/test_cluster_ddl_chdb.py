"""The cluster DDL where chDB can run it (no cluster, no Keeper here).

1. Every generated statement parses: chDB's ``formatQuery`` accepts it.
2. The local-table form runs: ON CLUSTER dropped and ``Replicated*(path, replica, args)`` swapped for the
   plain engine, in a database of its own; each local table then has exactly the columns of the
   single-node table, and the views fill the local targets from the local sources.
"""

from __future__ import annotations

import re

import pytest

from xpcore.warehouse import Warehouse
from xpcore.warehouse.cluster_ddl import cluster_ddl
from xpcore.warehouse.migrations import discover_migrations

pytestmark = pytest.mark.integration

STATEMENTS = cluster_ddl(discover_migrations(), "xp_prod")


def test_every_statement_parses(warehouse: Warehouse) -> None:
    for statement in STATEMENTS:
        formatted = warehouse.query_arrow("SELECT formatQuery({q:String}) AS f", {"q": statement.sql})
        text = formatted["f"][0].as_py()
        assert text, statement.sql
        if statement.kind == "local":
            assert "Replicated" in text and "ON CLUSTER xp_prod" in text


def test_server_backup_statements_parse(warehouse: Warehouse) -> None:
    from xpcore.warehouse.server_backup import server_backup_sql, server_restore_sql

    for sql in (
        server_backup_sql("disk:backups/xp-1", cluster="xp_prod"),
        server_restore_sql("https://s3.eu-west-1.amazonaws.com/acme/xp/1", cluster="xp_prod"),
    ):
        formatted = warehouse.query_arrow("SELECT formatQuery({q:String}) AS f", {"q": sql})
        assert formatted["f"][0].as_py().split()[:2] in (["BACKUP", "DATABASE"], ["RESTORE", "DATABASE"])


def local_form(sql: str) -> str:
    """The statement as one node without Keeper runs it, in database ``xpl``."""
    sql = sql.replace(" ON CLUSTER xp_prod", "")
    sql = re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?", r"\1(", sql)
    sql = re.sub(r"(\w+MergeTree)\(\)", r"\1", sql)
    sql = re.sub(r"\b(?<!non_)replicated_deduplication_window", "non_replicated_deduplication_window", sql)
    return re.sub(r"\bxp\.", "xpl.", sql).replace("DATABASE IF NOT EXISTS xp", "DATABASE IF NOT EXISTS xpl")


def columns(warehouse: Warehouse, database: str, table: str) -> list[tuple[str, str]]:
    rows = warehouse.query_arrow(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
        "ORDER BY position",
        {"d": database, "t": table},
    ).to_pylist()
    return [(r["name"], r["type"]) for r in rows]


def test_the_local_tables_run_and_match_the_single_node_schema(warehouse: Warehouse) -> None:
    runnable = [s for s in STATEMENTS if s.kind in ("database", "local", "view", "alter_local")]
    for statement in runnable:
        warehouse.command(local_form(statement.sql))
    locals_ = [re.search(r"xp\.(\w+)_local", s.sql).group(1) for s in STATEMENTS if s.kind == "local"]  # type: ignore[union-attr]
    for name in locals_:
        assert columns(warehouse, "xpl", f"{name}_local") == columns(warehouse, "xp", name), name
    engines = dict(
        (r["name"], r["engine"])
        for r in warehouse.query_arrow(
            "SELECT name, engine FROM system.tables WHERE database = 'xpl'"
        ).to_pylist()
    )
    assert engines["exposures_local"] == "ReplacingMergeTree"
    assert engines["unit_exposures_local"] == "AggregatingMergeTree"
    # the views were rewired to the local tables: an exposure reaches the local targets
    warehouse.command(
        "INSERT INTO xpl.exposures_local (exposure_id, unit_id, hash_attribute, experiment_key, "
        "variation_id, "
        "variation_key, overridden, source, attributes, exposed_at, schema_version) "
        "VALUES ('e1', 'u1', 'id', 'exp', 1, 'b', false, 'test', map(), '2026-12-01 10:00:00', 1)"
    )
    filled = warehouse.query_arrow(
        "SELECT (SELECT count() FROM xpl.unit_exposures_local) AS units, "
        "(SELECT sum(exposures) FROM xpl.exposure_counts_minute_local) AS counted, "
        "(SELECT count() FROM xp.unit_exposures) AS single_node"
    ).to_pylist()[0]
    assert filled == {"units": 1, "counted": 1, "single_node": 0}
