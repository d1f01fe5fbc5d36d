"""The embedded warehouse against a real chDB store: migrations, Arrow round trips, parameters, dedup
tokens, store ownership across processes, and `xp sql` through the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from xpcore.config import WarehouseSettings
from xpcore.errors import StoreBusyError, TerminalError
from xpcore.warehouse import Warehouse, open_warehouse
from xpcore.warehouse.chdb.ownership import StoreOwnedError, acquire_store
from xpcore.warehouse.migrations import applied_migrations, apply_migrations, discover_migrations

pytestmark = pytest.mark.integration

ROUNDTRIP_DDL = """
CREATE TABLE xp.roundtrip
(
    id UInt32,
    ts DateTime64(6, 'UTC'),
    variant LowCardinality(String),
    value Nullable(Float64),
    note String,
    tags Array(String),
    props Map(String, Int64)
)
ENGINE = MergeTree
ORDER BY id
SETTINGS non_replicated_deduplication_window = 1000
"""


def roundtrip_table() -> pa.Table:
    ts = pa.array(
        [
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(2030, 6, 1, tzinfo=dt.UTC),
        ],
        pa.timestamp("us", tz="UTC"),
    )
    return pa.Table.from_arrays(
        [
            pa.array([1, 2, 3], pa.uint32()),
            ts,
            pa.array(["control", "treatment", "control"]).dictionary_encode(),
            pa.array([1.5, None, -0.0], pa.float64()),
            pa.array(["it's", 'say "hi"\\n', "tab\there\nnewline ünïcode"]),
            pa.array([["a"], [], ["b", "c'd"]], pa.list_(pa.string())),
            pa.array([[("k", 1)], [], [("x", -2), ("y", 3)]], pa.map_(pa.string(), pa.int64())),
        ],
        names=["id", "ts", "variant", "value", "note", "tags", "props"],
    )


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query_arrow(f"SELECT count() AS n FROM {table}").column("n")[0].as_py())


# ------------------------------------------------------------------------------ migrations


def test_migrations_are_applied_once_and_idempotent_on_reopen(warehouse_settings: WarehouseSettings) -> None:
    on_disk = discover_migrations()
    store = open_warehouse(warehouse_settings)
    try:
        first = applied_migrations(store)
        assert sorted(first) == [m.version for m in on_disk]
        assert {v: a.checksum for v, a in first.items()} == {m.version: m.checksum for m in on_disk}
        assert apply_migrations(store) == []
    finally:
        store.close()
    store = open_warehouse(warehouse_settings)
    try:
        rows = store.query_arrow("SELECT count() AS n FROM xp.schema_migrations").column("n")[0].as_py()
        assert rows == len(on_disk)
        databases = store.query_arrow("SHOW DATABASES").column(0).to_pylist()
        assert "xp" in databases
    finally:
        store.close()


def test_edited_migration_is_refused(tmp_path: Path, warehouse_settings: WarehouseSettings) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    path = folder / "0001_demo.sql"
    path.write_text("-- demo\nCREATE TABLE IF NOT EXISTS xp.demo (a Int8) ENGINE = MergeTree ORDER BY a;\n")
    store = open_warehouse(warehouse_settings, migrate=False)
    try:
        assert [m.label for m in apply_migrations(store, folder)] == ["0001_demo"]
        assert apply_migrations(store, folder) == []
        path.write_text(path.read_text() + "-- edited\n")
        with pytest.raises(TerminalError, match="0001_demo was changed after it was applied"):
            apply_migrations(store, folder)
    finally:
        store.close()


def test_failed_migration_names_file_and_statement(
    tmp_path: Path, warehouse_settings: WarehouseSettings
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_broken.sql").write_text(
        "-- broken\nSELECT 1;\nCREATE TABLE xp.x (a NoSuchType) ENGINE = Memory;\n"
    )
    store = open_warehouse(warehouse_settings, migrate=False)
    try:
        with pytest.raises(TerminalError, match=r"0001_broken failed at statement 2: ClickHouse error 50"):
            apply_migrations(store, folder)
        assert applied_migrations(store) == {}
    finally:
        store.close()


# ------------------------------------------------------------------------------ Arrow in and out


def test_arrow_insert_and_query_round_trip_exactly(warehouse: Warehouse) -> None:
    warehouse.command(ROUNDTRIP_DDL)
    sent = roundtrip_table()
    assert warehouse.insert_arrow("xp.roundtrip", sent) == 3
    back = warehouse.query_arrow("SELECT * FROM xp.roundtrip ORDER BY id")
    assert back.column_names == sent.column_names
    assert back.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    expected = sent.to_pylist(maps_as_pydicts="strict")
    assert back.to_pylist(maps_as_pydicts="strict") == expected


def test_insert_matches_columns_by_name_not_position(warehouse: Warehouse) -> None:
    warehouse.command("CREATE TABLE xp.named (a String, b String) ENGINE = MergeTree ORDER BY a")
    swapped = pa.Table.from_arrays([pa.array(["B"]), pa.array(["A"])], names=["b", "a"])
    warehouse.insert_arrow("xp.named", swapped)
    assert warehouse.query_arrow("SELECT a, b FROM xp.named").to_pylist() == [{"a": "A", "b": "B"}]


def test_empty_result_keeps_its_columns(warehouse: Warehouse) -> None:
    result = warehouse.query_arrow("SELECT 1 AS x, 'a' AS y WHERE 0")
    assert (result.num_rows, result.column_names) == (0, ["x", "y"])


# ------------------------------------------------------------------------------ bound parameters


@pytest.mark.parametrize(
    "text",
    [
        "o'brien",
        'double "quotes"',
        "back\\slash \\n not a newline",
        "tab\tand\nnewline",
        "`tick`",
        "{x:String}",
    ],
)
def test_string_parameters_arrive_verbatim(warehouse: Warehouse, text: str) -> None:
    result = warehouse.query_arrow("SELECT {text:String} AS t, length({text:String}) AS n", {"text": text})
    assert result.to_pylist() == [{"t": text, "n": len(text.encode())}]


def test_typed_parameters(warehouse: Warehouse) -> None:
    since = dt.datetime(2024, 1, 2, 4, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    parameters: dict[str, Any] = {
        "since": since,
        "ids": [1, 2, 3],
        "names": ["a'b", "c"],
        "missing": None,
        "flag": True,
        "props": {"k": 7},
    }
    row = warehouse.query_arrow(
        "SELECT {since:DateTime64(6, 'UTC')} AS since, {ids:Array(UInt32)} AS ids, "
        "{names:Array(String)} AS names, {missing:Nullable(String)} AS missing, {flag:Bool} AS flag, "
        "{props:Map(String, Int64)}['k'] AS k",
        parameters,
    ).to_pylist()[0]
    assert row == {
        "since": since.astimezone(dt.UTC),
        "ids": [1, 2, 3],
        "names": ["a'b", "c"],
        "missing": None,
        "flag": True,
        "k": 7,
    }


def test_parameters_filter_rows(warehouse: Warehouse) -> None:
    warehouse.command(ROUNDTRIP_DDL)
    warehouse.insert_arrow("xp.roundtrip", roundtrip_table())
    result = warehouse.query_arrow(
        "SELECT id FROM xp.roundtrip WHERE note = {note:String} OR has(tags, {tag:String}) ORDER BY id",
        {"note": "it's", "tag": "c'd"},
    )
    assert result.column("id").to_pylist() == [1, 3]


# ------------------------------------------------------------------------------ dedup tokens


def test_dedup_token_gives_exactly_once_inserts(warehouse: Warehouse) -> None:
    warehouse.command(ROUNDTRIP_DDL)
    batch = roundtrip_table()
    for _ in range(3):
        warehouse.insert_arrow("xp.roundtrip", batch, dedup_token="roundtrip-p0-o0")
    assert count(warehouse, "xp.roundtrip") == 3
    warehouse.insert_arrow("xp.roundtrip", batch, dedup_token="roundtrip-p0-o3")
    assert count(warehouse, "xp.roundtrip") == 6
    different = batch.set_column(0, "id", pa.array([4, 5, 6], pa.uint32()))
    warehouse.insert_arrow("xp.roundtrip", different, dedup_token="roundtrip-p0-o0")
    assert count(warehouse, "xp.roundtrip") == 6  # a token is trusted: same token, other data, dropped


def test_without_a_token_identical_blocks_deduplicate_by_content(warehouse: Warehouse) -> None:
    """ClickHouse semantics on tables with a deduplication window: documented in decision 0002."""
    warehouse.command(ROUNDTRIP_DDL)
    batch = roundtrip_table()
    warehouse.insert_arrow("xp.roundtrip", batch)
    warehouse.insert_arrow("xp.roundtrip", batch)
    assert count(warehouse, "xp.roundtrip") == 3
    warehouse.insert_arrow("xp.roundtrip", batch.slice(0, 2))
    assert count(warehouse, "xp.roundtrip") == 5


def test_dedup_token_survives_reopening_the_store(warehouse_settings: WarehouseSettings) -> None:
    batch = roundtrip_table()
    for _ in range(2):
        store = open_warehouse(warehouse_settings)
        try:
            store.command(ROUNDTRIP_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
            store.insert_arrow("xp.roundtrip", batch, dedup_token="after-restart")
            assert count(store, "xp.roundtrip") == 3
        finally:
            store.close()


# ------------------------------------------------------------------------------ errors and read-only


def test_bad_sql_is_a_terminal_one_line_error(warehouse: Warehouse) -> None:
    with pytest.raises(TerminalError) as caught:
        warehouse.query_arrow("SELEC 1")
    assert str(caught.value).startswith("ClickHouse error 62 SYNTAX_ERROR: Syntax error")
    assert "\n" not in str(caught.value)


def test_read_only_queries_cannot_write_even_when_the_text_hides_it(warehouse: Warehouse) -> None:
    warehouse.command("CREATE TABLE xp.guarded (a Int8) ENGINE = MergeTree ORDER BY a")
    assert warehouse.query_arrow("SELECT count() AS n FROM xp.guarded", read_only=True).to_pylist() == [
        {"n": 0}
    ]
    with pytest.raises(TerminalError, match="read-only"):  # the lexical guard (issue #13) answers first
        warehouse.query_arrow("INSERT INTO xp.guarded SELECT 1", read_only=True)
    with pytest.raises(TerminalError, match="READONLY"):
        warehouse.query_arrow("SELECT 1 SETTINGS readonly = 0", read_only=True)
    warehouse.command("INSERT INTO xp.guarded SELECT 1")  # the read-write connection is unaffected
    assert count(warehouse, "xp.guarded") == 1


# ------------------------------------------------------------------------------ store ownership


HOLD_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from xpcore.config import WarehouseSettings
    from xpcore.warehouse import open_warehouse

    store = open_warehouse(WarehouseSettings(home=Path(sys.argv[1]), store_wait_seconds=0))
    if len(sys.argv) > 2:
        store.advertise_api_url(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
    """
)


class FakeClock:
    """A monotonic clock that moves only when :meth:`sleep` is called (and records each sleep)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def hold_store(home: Path, *api_url: str) -> subprocess.Popen[str]:
    owner = subprocess.Popen(
        [sys.executable, "-c", HOLD_STORE, str(home), *api_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "ready"
    return owner


def release(owner: subprocess.Popen[str]) -> None:
    assert owner.stdin is not None
    owner.stdin.write("\n")
    owner.stdin.flush()
    owner.wait(timeout=30)


def test_second_process_gets_store_busy_naming_the_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    owner = hold_store(home)
    try:
        clock = FakeClock()
        with pytest.raises(StoreOwnedError):  # waits on the clock for a short-lived owner first
            store_path = WarehouseSettings(home=home).warehouse_path
            acquire_store(store_path, wait_seconds=0.3, clock=clock, sleep=clock.sleep)
        assert clock.slept and sum(clock.slept) >= 0.3
        settings = WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=0)
        with pytest.raises(StoreBusyError) as caught:
            open_warehouse(settings)
        assert f"pid {owner.pid}" in str(caught.value)
        assert "xp up" in str(caught.value)
        assert caught.value.owner.pid == owner.pid  # type: ignore[attr-defined]
    finally:
        release(owner)
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None))  # free again
    store.close()


def test_owner_serving_an_api_is_reported_without_waiting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    owner = hold_store(home, "http://127.0.0.1:8399")
    try:
        clock = FakeClock()
        with pytest.raises(StoreOwnedError):  # an owner serving an API is reported at once, not waited for
            store_path = WarehouseSettings(home=home).warehouse_path
            acquire_store(store_path, wait_seconds=30, clock=clock, sleep=clock.sleep)
        assert clock.slept == []
        settings = WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=30)
        with pytest.raises(StoreBusyError, match=r"http://127\.0\.0\.1:8399") as caught:
            open_warehouse(settings)
        assert caught.value.owner.api_url == "http://127.0.0.1:8399"  # type: ignore[attr-defined]
    finally:
        release(owner)


def test_killed_owner_leaves_no_stale_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    owner = hold_store(home)
    owner.kill()
    owner.wait(timeout=30)
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=0))
    try:
        assert count(store, "xp.schema_migrations") == len(discover_migrations())
    finally:
        store.close()


# ------------------------------------------------------------------------------ `xp sql`


def xp(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env["XP_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_xp_sql_formats_and_read_only_refusal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = xp(home, "sql", "SELECT 1 AS x", "--format", "json")
    assert (result.returncode, result.stdout, result.stderr) == (0, '[{"x": 1}]\n', "")

    created = xp(home, "sql", "CREATE TABLE xp.cli (id UInt8, name String) ENGINE = MergeTree ORDER BY id")
    assert created.returncode == 2
    assert created.stderr.startswith("error: refused, `xp sql` is read-only: CREATE")
    assert created.stderr.count("\n") == 1

    assert (
        xp(
            home,
            "sql",
            "CREATE TABLE xp.cli (id UInt8, name String) ENGINE = MergeTree ORDER BY id",
            "--write",
        ).returncode
        == 0
    )
    inserted = xp(
        home, "sql", "INSERT INTO xp.cli VALUES (1, 'a,\"b'), (2, NULL)", "--write", "--format", "json"
    )
    assert (inserted.returncode, inserted.stdout) == (0, "[]\n")

    query = "SELECT id, name, toDateTime64('2024-01-02 03:04:05.5', 3, 'UTC') AS ts FROM xp.cli ORDER BY id"
    as_json = xp(home, "sql", query, "--format", "json")
    assert json.loads(as_json.stdout) == [
        {"id": 1, "name": 'a,"b', "ts": "2024-01-02T03:04:05.500000+00:00"},
        {"id": 2, "name": "", "ts": "2024-01-02T03:04:05.500000+00:00"},
    ]
    as_csv = xp(home, "sql", query, "--format", "csv")
    assert as_csv.stdout.splitlines() == [
        "id,name,ts",
        '1,"a,""b",2024-01-02T03:04:05.500000+00:00',
        "2,,2024-01-02T03:04:05.500000+00:00",
    ]
    as_table = xp(home, "sql", query)
    assert as_table.returncode == 0
    assert 'a,"b' in as_table.stdout and "name" in as_table.stdout

    bad = xp(home, "sql", "SELECT * FROM xp.nope")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ClickHouse error 60 UNKNOWN_TABLE")
    assert "Traceback" not in bad.stderr


def test_xp_sql_reports_a_busy_store_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    owner = hold_store(home)
    try:
        result = xp(home, "sql", "SELECT 1")
    finally:
        release(owner)
    assert result.returncode == 1
    assert result.stderr.startswith("error: warehouse store ")
    assert f"in use by pid {owner.pid}" in result.stderr
    assert result.stderr.count("\n") == 1
