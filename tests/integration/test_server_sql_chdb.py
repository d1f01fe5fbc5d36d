"""Every statement the ClickHouse-server path sends, exercised on chDB (issue #15; decision 0095).

The chDB-only integration files in :data:`SUITE` run again (in a child pytest) with
``XP_TEST_WAREHOUSE=server-on-chdb``: their ``warehouse`` is the real server adapter over a recording
clickhouse-connect client on the test's store (tests/fixtures/server_path.py), migrations included. Then:

1. those tests pass through the server path;
2. every read gave the same columns, types and rows as the chDB adapter on the same data;
3. every ``sql/queries`` and ``sql/dashboards`` file and every migration statement was sent;
4. every warehouse call site in the product code (found by scanning the source) was exercised, or is in
   :data:`NOT_ON_CHDB` (cannot run here; each names its text check) or :data:`NOT_DRIVEN` (a known gap,
   listed so that it shrinks: an entry that becomes exercised fails until it is removed).

A new call site, query file or migration therefore fails here until a test drives it (or it is listed).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from tests.fixtures.server_path import PRODUCT_ROOTS, REPO, ServerPathWarehouse
from xpcore.errors import ReadOnlyError, TerminalError
from xpcore.warehouse.migrations import BOOTSTRAP, discover_migrations, load_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]


SUITE = [
    "test_activity.py",
    "test_cluster_ddl_chdb.py",
    "test_dashboard_api.py",
    "test_etl.py",
    "test_export_api.py",
    "test_exports_job.py",
    "test_funnels.py",
    "test_lake.py",
    "test_plan_history.py",
    "test_program.py",
    "test_quality_alerts.py",
    "test_quantile_metrics.py",
    "test_results_adjustment.py",
    "test_runbook_queries.py",
    "test_schema_tables.py",
    "test_stats_job_isolation.py",
    "test_stream_state.py",
    "test_unit_values.py",
    "test_unit_values_job.py",
    "test_unit_values_staleness.py",
    "test_usage_by_key.py",
    "test_warehouse_workflows.py",
]
"""Integration files (chDB only, no Kafka) whose workflows run through the server path. Not here:
test_sql_guard_chdb.py (checks the chDB adapter's own read-only connection), test_warehouse_chdb.py and
test_remote_warehouse.py (adapter-specific), and the files that need a Kafka broker."""

WAREHOUSE_METHODS = frozenset({"command", "query_arrow", "insert_arrow"})

NOT_WAREHOUSE = {
    "xpstream/stream_workers.py:WorkerPool._start:command": "the worker's argv (Popen), not SQL",
}
"""Calls the source scan finds that are not warehouse calls."""

NOT_ON_CHDB: dict[str, str] = {}
"""Call sites that cannot run on chDB, with the reason and the test that checks their text. Empty: every
call site's statement runs on chDB. What cannot (``ON CLUSTER`` DDL and the cluster routing of
mutations, ``BACKUP``/``RESTORE``) is not sent through a call site of the single-node path; it is checked
as text by tests/unit/deploy/test_cluster_routing.py and parsed / run in its local form by
test_cluster_ddl_chdb.py."""

NOT_DRIVEN = {
    "jobs/lake/__init__.py:_export_date:query_arrow": (
        "only when a date's rows vanish between planning and export (a race); a `SELECT * … LIMIT 0` "
        "of a table the lake tests read in full"
    ),
    **{
        f"pipelines/merge_pacing.py:PacedMerges.{site}": (
            "only on an embedded store the worker opened itself (a ChdbWarehouse, decision 0111): never "
            "sent to a server; driven on chDB by test_merge_pacing.py"
        )
        for site in ("_pace:command", "_resume:command", "_most_parts:query_arrow")
    },
    "pipelines/rebalance_refresh.py:refresh_after_rebalance:insert_arrow": (
        "needs the events topic's partition count from a broker (Kafka); the same insert into "
        "xp.attributed_events is sent by worker_setup.restore_from_warehouse (test_warehouse_workflows.py)"
    ),
    "xpstream/cli/sql.py:sql:query_arrow": "`xp sql` opens its own store; the statement is the user's",
    "xpstream/cli/sql.py:sql:command": "`xp sql --write` opens its own store; the statement is the user's",
    "xpstream/client.py:Client.sql:query_arrow": (
        "the analyst client opens its own store (test_analyst_client.py, chDB); the statement is the user's"
    ),
    "xpstream/results_query.py:registry_snapshot:query_arrow": (
        "only with the registry topic unreachable (Kafka); it sends sql/dashboards/registry_records.sql, "
        "which the dashboard tests send"
    ),
}
"""Call sites no test in :data:`SUITE` drives through the server path yet (known gaps, to shrink)."""


# ------------------------------------------------------------------------------------------ the source scan


@dataclass(frozen=True)
class CallSite:
    """One ``<receiver>.command/query_arrow/insert_arrow(...)`` call in the product code."""

    key: str
    """``path:function:method`` (``#2``, ``#3`` … for the later calls of one method in one function)."""
    path: str
    first_line: int
    last_line: int


def call_sites() -> list[CallSite]:
    """Every call of a warehouse method in the product packages (decorators such as ``app.command()``
    and calls on typer apps excluded)."""
    found: list[CallSite] = []
    for root in PRODUCT_ROOTS:
        for file in sorted((REPO / root).rglob("*.py")):
            path = file.relative_to(REPO).as_posix()
            tree = ast.parse(file.read_text(encoding="utf-8"))
            counts: dict[str, int] = defaultdict(int)
            _scan(tree, [], path, counts, found)
    return found


def _scan(node: ast.AST, scope: list[str], path: str, counts: dict[str, int], out: list[CallSite]) -> None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        inner = [*scope, node.name]  # decorators (@app.command()) are not scanned: not warehouse calls
        for statement in node.body:
            _scan(statement, inner, path, counts, out)
        return
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WAREHOUSE_METHODS
        and ast.unparse(node.func.value) != "app"
    ):
        base = f"{path}:{'.'.join(scope) or '<module>'}:{node.func.attr}"
        counts[base] += 1
        key = base if counts[base] == 1 else f"{base}#{counts[base]}"
        if key not in NOT_WAREHOUSE:
            out.append(CallSite(key, path, node.lineno, node.end_lineno or node.lineno))
    for child in ast.iter_child_nodes(node):
        _scan(child, scope, path, counts, out)


# ------------------------------------------------------------------------------------------ the recorded run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, list[dict[str, Any]]]:
    """Run :data:`SUITE` through the server path; its exit code, output tail and recorded calls."""
    record = tmp_path_factory.mktemp("server-path") / "calls.jsonl"
    env = {**os.environ, "XP_TEST_WAREHOUSE": "server-on-chdb", "XP_TEST_SERVER_RECORD": str(record)}
    files = [str(REPO / "tests" / "integration" / name) for name in SUITE]
    run = subprocess.run(  # nosec B603 - our own interpreter and test files
        [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-x"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )
    calls = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    return run.returncode, run.stdout[-4000:] + run.stderr[-2000:], calls


def test_the_suite_passes_through_the_server_path(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    returncode, output, calls = recorded
    assert returncode == 0, output
    assert len(calls) > 1000


def test_every_read_agrees_with_the_chdb_adapter(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    _, _, calls = recorded
    reads = [c for c in calls if c["method"] == "query_arrow"]
    assert reads
    assert [(c["site"], c["sql"][:200], c["mismatch"]) for c in reads if c.get("mismatch")] == []


def test_every_named_query_is_sent(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    _, _, calls = recorded
    sent = {c["sql"] for c in calls}
    named = {
        f"{directory.name}/{file.stem}": load_query(file.stem, directory)
        for directory in (REPO / "sql" / "queries", REPO / "sql" / "dashboards")
        for file in sorted(directory.glob("*.sql"))
    }
    assert len(named) > 40
    # sent as it is, or inside a statement of a test (``SELECT … FROM (<query>)``)
    assert sorted(name for name, text in named.items() if not any(text in sql for sql in sent)) == []


def test_every_migration_statement_is_sent(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    _, _, calls = recorded
    commands = {c["sql"] for c in calls if c["method"] == "command"}
    statements = [*BOOTSTRAP, *(s for m in discover_migrations() for s in m.statements)]
    assert [s[:120] for s in statements if s not in commands] == []


def test_every_call_site_is_exercised_or_listed(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    _, _, calls = recorded
    sites = call_sites()
    by_path: dict[str, list[CallSite]] = defaultdict(list)
    for site in sites:
        by_path[site.path].append(site)
    exercised = {
        site.key
        for call in calls
        if call["site"]
        for site in by_path[call["site"][0]]
        if site.first_line <= call["site"][1] <= site.last_line
    }
    keys = {site.key for site in sites}
    listed = set(NOT_ON_CHDB) | set(NOT_DRIVEN)
    assert sorted(keys - exercised - listed) == [], "warehouse calls no test drives through the server path"
    assert sorted(listed & exercised) == [], "exercised now: remove from NOT_DRIVEN / NOT_ON_CHDB"
    assert sorted(listed - keys) == [], "listed call sites that no longer exist"


def test_the_server_adapter_sends_its_own_settings(recorded: tuple[int, str, list[dict[str, Any]]]) -> None:
    """Dedup tokens ride as ``insert_deduplication_token`` and read-only reads as ``readonly=2``."""
    _, _, calls = recorded
    wire = [request for call in calls for request in call["wire"]]
    inserts = [r for r in wire if r["kind"] == "insert"]
    assert any("insert_deduplication_token" in r["settings"] for r in inserts)
    assert all(r["statement"].startswith("INSERT INTO `xp`.`") for r in inserts)
    assert all(r["statement"].endswith(" FORMAT Arrow") for r in inserts)
    assert any(r["settings"].get("readonly") == "2" for r in wire if r["kind"] == "query")


# ------------------------------------------------------------------------------------------ direct checks


def test_a_resent_insert_with_its_token_is_dropped_on_the_server_path(
    server_path: ServerPathWarehouse,
) -> None:
    """The sink's exactly-once load on the server path: the same token twice, one copy; the original's
    non-UTF-8 bytes come back as sent."""
    received = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    batch = pa.Table.from_arrays(
        [
            pa.array(["dl-1", "dl-2"]),
            pa.array(["invalid_json", "invalid_json"]),
            pa.array(["", ""]),
            pa.array(["exposure", "exposure"]),
            pa.array(["xp.exposures", "xp.exposures"]),
            pa.array([b"\xfe\x00{", b"\x00'\\"], pa.binary()),
            pa.array([received, received], pa.timestamp("ms", "UTC")),
            pa.array([1, 1], pa.uint16()),
        ],
        names=[
            "dead_letter_id",
            "reason",
            "detail",
            "record_kind",
            "source_topic",
            "original",
            "received_at",
            "schema_version",
        ],
    )
    for _ in range(2):
        assert server_path.insert_arrow("xp.dead_letters", batch, dedup_token="sink-0-0-2") == 2
    server_path.insert_arrow("xp.dead_letters", batch.slice(0, 1), dedup_token="sink-0-2-3")
    rows = server_path.query_arrow(
        "SELECT dead_letter_id, original FROM xp.dead_letters ORDER BY dead_letter_id"
    )
    originals = rows.column("original").cast(pa.binary()).to_pylist()
    assert list(zip(rows.column("dead_letter_id").to_pylist(), originals, strict=True)) == [
        ("dl-1", b"\xfe\x00{"),
        ("dl-1", b"\xfe\x00{"),
        ("dl-2", b"\x00'\\"),
    ]
    tokens = [r["settings"].get("insert_deduplication_token") for r in server_path.backend.sent]
    assert tokens.count("sink-0-0-2") == 2


def test_the_read_only_request_refuses_writes_on_its_own(
    server_path: ServerPathWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile input with the lexical guard switched off: ``readonly=2`` on the request still refuses."""
    from xpcore.warehouse.clickhouse import adapter

    monkeypatch.setattr(adapter, "read_only_refusal", lambda sql, **kwargs: None)
    with pytest.raises(TerminalError, match="READONLY"):
        server_path.server.query_arrow("CREATE TABLE xp.hostile (a Int8) ENGINE = Memory", read_only=True)
    with pytest.raises(TerminalError, match="READONLY"):
        server_path.server.query_arrow("INSERT INTO xp.exposures (unit_id) VALUES ('x')", read_only=True)
    # as over HTTP, readonly lived for those requests only: the writes that follow still run
    server_path.command("CREATE TABLE xp.after_read_only (a Int8) ENGINE = Memory")
    monkeypatch.undo()
    with pytest.raises(ReadOnlyError):
        server_path.query_arrow("DROP TABLE xp.after_read_only", read_only=True)


@pytest.fixture
def server_path(warehouse_settings: Any) -> Any:
    """The server adapter on a fresh store (whatever XP_TEST_WAREHOUSE says)."""
    from xpcore.warehouse import open_warehouse
    from xpcore.warehouse.chdb import ChdbWarehouse
    from xpcore.warehouse.migrations import apply_migrations

    store = open_warehouse(warehouse_settings, migrate=False)
    assert isinstance(store, ChdbWarehouse)
    try:
        with ServerPathWarehouse(store) as server:
            apply_migrations(server)
            yield server
            assert not server.mismatches, server.mismatches
    finally:
        store.close()
