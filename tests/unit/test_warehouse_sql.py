"""The warehouse's SQL as text: what the server adapter sends, statement splitting, read-only detection,
parameter rendering, error lines, migration planning. No database."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from clickhouse_connect.driver import exceptions as ch_exceptions
from pydantic import SecretStr

from xpcore.config import WarehouseSettings
from xpcore.errors import ConfigError, ReadOnlyError, TerminalError, TransientError
from xpcore.warehouse.chdb.adapter import insert_statement
from xpcore.warehouse.chdb.ownership import StoreOwnedError, acquire_store, read_owner
from xpcore.warehouse.clickhouse.adapter import (
    ClickHouseWarehouse,
    WireText,
    bound_parameters,
    client_arguments,
)
from xpcore.warehouse.migrations import (
    AppliedMigration,
    Migration,
    MigrationError,
    discover_migrations,
    load_query,
    plan_migrations,
)
from xpcore.warehouse.sqltext import (
    escape_parameter,
    leading_keyword,
    one_line_error,
    placeholders,
    read_only_refusal,
    render_parameter,
    render_parameters,
    split_statements,
    wire_parameter,
)


class RecordingClient:
    """Stands in for a clickhouse-connect client: records every call, raises what it is told to."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.raises = raises
        self.closed = False

    def _record(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((method, args, kwargs))
        if self.raises is not None:
            raise self.raises
        return arrow(x=[1]) if method == "query_arrow" else None

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return self._record("command", *args, **kwargs)

    def query_arrow(self, *args: Any, **kwargs: Any) -> Any:
        return self._record("query_arrow", *args, **kwargs)

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        return self._record("insert_arrow", *args, **kwargs)

    def close(self) -> None:
        self.closed = True


def arrow(**columns: pa.Array | list[Any]) -> pa.Table:
    """A pyarrow Table (``from_arrays``: ``pa.table(dict)`` would import pandas, seconds here)."""
    arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in columns.values()]
    return pa.Table.from_arrays(arrays, names=list(columns))


def server(client: RecordingClient) -> ClickHouseWarehouse:
    return ClickHouseWarehouse(client, "http://ch.example:8123")


# ------------------------------------------------------------------------------ server adapter: requests


def test_server_query_sends_sql_rendered_parameters_and_string_columns() -> None:
    client = RecordingClient()
    sql = "SELECT count() FROM xp.events WHERE unit_id = {unit:String} AND ts >= {since:DateTime64(6, 'UTC')}"
    since = dt.datetime(2024, 1, 2, 4, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    server(client).query_arrow(sql, {"unit": "o'brien", "since": since})
    assert client.calls == [
        (
            "query_arrow",
            (sql,),
            {
                "parameters": {
                    "unit": WireText("o\\'brien"),
                    "since": WireText("2024-01-02 03:04:05.123456"),
                },
                "settings": None,
                "use_strings": True,
            },
        )
    ]


def test_clickhouse_connect_sends_our_parameter_text_unchanged() -> None:
    """Through clickhouse-connect's own binding: the HTTP ``param_*`` values are our wire text."""
    from clickhouse_connect.driver.binding import bind_query

    sql = (
        "SELECT {s:String}, {n:Nullable(String)}, {a:Array(String)}, {m:Map(String, Int64)}, "
        "{t:DateTime64(6, 'UTC')}, {b:Bool}"
    )
    values = {
        "s": "tab\there 'q' \\ `x`",
        "n": None,
        "a": ["it's", "b"],
        "m": {"k": 1},
        "t": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        "b": False,
    }
    final_sql, http_params = bind_query(sql, bound_parameters(sql, values))
    assert final_sql == sql
    assert http_params == {
        "param_s": "tab\\there \\'q\\' \\\\ \\`x\\`",
        "param_n": "\\N",
        "param_a": "['it\\'s', 'b']",
        "param_m": "{'k': 1}",
        "param_t": "2024-01-02 03:04:05.000006",
        "param_b": "false",
    }
    assert http_params == {f"param_{k}": wire_parameter(v) for k, v in values.items()}


def test_server_read_only_query_sends_readonly_2() -> None:
    client = RecordingClient()
    server(client).query_arrow("SELECT 1", read_only=True)
    assert client.calls == [
        ("query_arrow", ("SELECT 1",), {"parameters": None, "settings": {"readonly": 2}, "use_strings": True})
    ]


def test_server_read_only_path_applies_the_sql_guard_before_sending() -> None:
    client = RecordingClient()
    for sql in (
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString')",
        "WITH x AS (SELECT 1) INSERT INTO FUNCTION file('/tmp/t', 'LineAsString', 'l String') SELECT 'x'",
    ):
        with pytest.raises(ReadOnlyError):
            server(client).query_arrow(sql, read_only=True)
    assert client.calls == []  # nothing reached the server
    opted_in = ClickHouseWarehouse(client, "http://ch.example:8123", allow_external=True)
    opted_in.query_arrow("SELECT * FROM s3('https://bucket/k.csv')", read_only=True)
    assert len(client.calls) == 1


def test_server_command_passes_parameters_separately() -> None:
    client = RecordingClient()
    sql = "ALTER TABLE xp.events DELETE WHERE experiment = {experiment:String}"
    server(client).command(sql, {"experiment": "checkout'; DROP TABLE x"})
    assert client.calls == [
        ("command", (sql,), {"parameters": {"experiment": WireText("checkout\\'; DROP TABLE x")}})
    ]


def test_server_insert_sends_database_table_and_dedup_token() -> None:
    client = RecordingClient()
    data = arrow(id=[1, 2])
    rows = server(client).insert_arrow("xp.events", data, dedup_token="events-p3-o1200")
    assert rows == 2
    assert client.calls == [
        (
            "insert_arrow",
            ("events", data),
            {"database": "xp", "settings": {"insert_deduplication_token": "events-p3-o1200"}},
        )
    ]


def test_server_insert_without_token_sends_no_settings_and_skips_empty_tables() -> None:
    client = RecordingClient()
    warehouse = server(client)
    assert warehouse.insert_arrow("xp.events", arrow(id=pa.array([], pa.int64()))) == 0
    warehouse.insert_arrow("xp.events", arrow(id=[1]))
    assert [(name, kwargs["settings"]) for name, _, kwargs in client.calls] == [("insert_arrow", None)]


def test_server_rejects_unqualified_table_names() -> None:
    with pytest.raises(TerminalError, match=r"database\.name"):
        server(RecordingClient()).insert_arrow("events", arrow(id=[1]))


def test_server_errors_split_into_transient_and_terminal() -> None:
    unreachable = ch_exceptions.OperationalError("Error HTTPConnectionPool: connection refused")
    with pytest.raises(TransientError, match="unreachable"):
        server(RecordingClient(raises=unreachable)).query_arrow("SELECT 1")

    timeout = ch_exceptions.DatabaseError(
        "Received ClickHouse exception, code: 159, server response: Code: 159. DB::Exception: Timeout "
        "exceeded: elapsed 1.0 s. (TIMEOUT_EXCEEDED) (version 25.3.1.1)",
        code=159,
    )
    with pytest.raises(TransientError, match="159 TIMEOUT_EXCEEDED"):
        server(RecordingClient(raises=timeout)).query_arrow("SELECT 1")

    syntax = ch_exceptions.DatabaseError(
        "Received ClickHouse exception, code: 62, server response: Code: 62. DB::Exception: Syntax error: "
        "failed at position 1 ('SELEC'). (SYNTAX_ERROR) (version 25.3.1.1) (for url http://ch:8123)",
        code=62,
    )
    with pytest.raises(TerminalError) as caught:
        server(RecordingClient(raises=syntax)).command("SELEC 1")
    assert (
        str(caught.value) == "ClickHouse error 62 SYNTAX_ERROR: Syntax error: failed at position 1 ('SELEC')."
    )


def test_server_close_is_idempotent_and_later_calls_fail_clearly() -> None:
    client = RecordingClient()
    warehouse = server(client)
    warehouse.close()
    warehouse.close()
    assert client.closed
    with pytest.raises(TerminalError, match="closed"):
        warehouse.query_arrow("SELECT 1")


# ------------------------------------------------------------------------------ server adapter: settings


def test_client_arguments_from_url_and_settings() -> None:
    settings = WarehouseSettings(
        clickhouse_url="https://ch.example:9443",
        clickhouse_user="xp",
        clickhouse_password=SecretStr("s3cret"),
    )
    arguments = client_arguments(settings)
    assert arguments == {
        "host": "ch.example",
        "port": 9443,
        "interface": "https",
        "secure": True,
        "username": "xp",
        "password": "s3cret",
        "connect_timeout": 10.0,
        "send_receive_timeout": 300.0,
        "autogenerate_session_id": False,
        "verify": True,  # https: the server's certificate is checked unless XP_CLICKHOUSE_VERIFY=false
    }


def test_client_arguments_credentials_in_url_win_and_never_show_in_location() -> None:
    settings = WarehouseSettings(
        clickhouse_url="http://bob:p%40ss@ch.example", clickhouse_password=SecretStr("other")
    )
    arguments = client_arguments(settings)
    assert (arguments["username"], arguments["password"], arguments["port"]) == ("bob", "p@ss", 8123)
    assert settings.location == "http://ch.example"


@pytest.mark.parametrize("url", ["ch.example:8123", "tcp://ch.example:9000", "http://"])
def test_client_arguments_reject_urls_that_are_not_http(url: str) -> None:
    from xpcore.config import load_settings

    with pytest.raises(ConfigError, match="invalid setting XP_CLICKHOUSE_URL"):  # refused when read
        load_settings(WarehouseSettings, clickhouse_url=url)
    with pytest.raises(ConfigError, match="XP_CLICKHOUSE_URL"):  # and by the adapter, built unchecked
        client_arguments(WarehouseSettings.model_construct(clickhouse_url=url))


# ------------------------------------------------------------------------------ embedded adapter: text


def test_chdb_insert_statement_names_columns_and_quotes_the_token() -> None:
    sql = insert_statement("xp.events", ["event_id", "unit_id"], "tok'1")
    assert sql == (
        "INSERT INTO `xp`.`events` (`event_id`, `unit_id`) SETTINGS insert_deduplication_token='tok\\'1'"
    )
    assert insert_statement("xp.events", ["a"], None) == "INSERT INTO `xp`.`events` (`a`)"


# ------------------------------------------------------------------------------ statements


def test_split_statements_ignores_semicolons_in_strings_names_and_comments() -> None:
    text = """-- header; with a semicolon
CREATE TABLE IF NOT EXISTS xp.a (s String DEFAULT ';') ENGINE = Memory;
/* block; comment */
CREATE VIEW xp.`v;1` AS SELECT 'it''s; fine' AS s, 'a\\';b' AS t;
-- trailing comment only
"""
    assert split_statements(text) == [
        "-- header; with a semicolon\nCREATE TABLE IF NOT EXISTS xp.a (s String DEFAULT ';') ENGINE = Memory",
        "/* block; comment */\nCREATE VIEW xp.`v;1` AS SELECT 'it''s; fine' AS s, 'a\\';b' AS t",
    ]


def test_split_statements_of_blank_or_comment_only_text_is_empty() -> None:
    assert split_statements("  \n-- nothing\n;;\n/* here */") == []


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("select 1", "SELECT"),
        ("  -- note\n /* x */ (SELECT 1) UNION ALL (SELECT 2)", "SELECT"),
        ("WITH 1 AS x SELECT x", "WITH"),
        ("insert into xp.t values (1)", "INSERT"),
        ("'quoted'", ""),
    ],
)
def test_leading_keyword(sql: str, keyword: str) -> None:
    assert leading_keyword(sql) == keyword


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "with t as (select 1) select * from t",
        "SHOW TABLES FROM xp",
        "DESCRIBE TABLE xp.events",
        "desc xp.events",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE xp.events",
        "SELECT 'INSERT INTO x; DROP TABLE y' AS s;",
        "-- a comment\nSELECT 1",
    ],
)
def test_read_only_statements_are_allowed(sql: str) -> None:
    assert read_only_refusal(sql) is None


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("INSERT INTO xp.t VALUES (1)", "INSERT is not a read-only statement"),
        ("create table xp.t (a Int8) engine = Memory", "CREATE is not a read-only statement"),
        ("DROP TABLE xp.events", "DROP is not"),
        ("ALTER TABLE xp.events DELETE WHERE 1", "ALTER is not"),
        ("TRUNCATE TABLE xp.events", "TRUNCATE is not"),
        ("OPTIMIZE TABLE xp.events FINAL", "OPTIMIZE is not"),
        ("SET readonly = 0", "SET is not"),
        ("SELECT 1; DROP TABLE xp.events", "2 statements"),
        ("SELECT 1 INTO OUTFILE '/tmp/x.csv'", "INTO OUTFILE"),
        ("   ", "empty"),
    ],
)
def test_writes_are_refused_with_a_reason(sql: str, reason: str) -> None:
    refusal = read_only_refusal(sql)
    assert refusal is not None
    assert reason in refusal


# ------------------------------------------------------------------------------ parameters


def test_render_parameter_values() -> None:
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert render_parameter(aware) == "2024-01-02 03:04:05.000006"
    assert render_parameter(aware.replace(tzinfo=None)) == "2024-01-02 03:04:05.000006"
    assert render_parameter(dt.date(2024, 1, 2)) == "2024-01-02"
    assert render_parameter(True) == "true"
    assert render_parameter(42) == "42"
    assert render_parameter(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert render_parameter(["a", "b'c", None]) == "['a', 'b\\'c', NULL]"
    assert render_parameter((1, "x")) == "(1, 'x')"
    assert render_parameter({"k": 1.5}) == "{'k': 1.5}"
    with pytest.raises(TerminalError, match="cannot bind"):
        render_parameter(object())


def test_escape_parameter_matches_clickhouse_escaped_text() -> None:
    assert escape_parameter("a\tb\nc\\d'e`f\"g") == "a\\tb\\nc\\\\d\\'e\\`f\"g"


def test_parameters_must_match_placeholders() -> None:
    sql = "SELECT {a:String}, {b:Array(String)} -- {c:String} is a comment\n, '{d:String}'"
    assert placeholders(sql) == {"a": "String", "b": "Array(String)"}
    assert render_parameters(sql, {"a": None, "b": ["x"]}) == {"a": "\\N", "b": "['x']"}
    with pytest.raises(TerminalError, match="placeholder in the SQL: c"):
        render_parameters(sql, {"a": "x", "c": "y"})


# ------------------------------------------------------------------------------ errors


def test_one_line_error_from_chdb_message() -> None:
    message = (
        "Code: 60. DB::Exception: Unknown table expression identifier 'xp.nope'. Maybe you meant "
        "system.one? In scope SELECT * FROM xp.nope. (UNKNOWN_TABLE)"
    )
    assert one_line_error(message) == (
        "ClickHouse error 60 UNKNOWN_TABLE: Unknown table expression identifier 'xp.nope'. "
        "Maybe you meant system.one? In scope SELECT * FROM xp.nope."
    )


def test_one_line_error_is_short_and_single_line() -> None:
    message = "Code: 62. DB::Exception: Syntax error: Expected one of: " + ", ".join(["X"] * 400)
    message += "\nStack trace:\n0. foo\n1. bar"
    line = one_line_error(message)
    assert "\n" not in line
    assert len(line) < 340
    assert "Stack trace" not in line


# ------------------------------------------------------------------------------ migrations


def write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)


def test_discover_migrations_orders_by_version_and_splits_statements(tmp_path: Path) -> None:
    write(
        tmp_path, "0002_second.sql", "-- second\nCREATE TABLE IF NOT EXISTS xp.b (a Int8) ENGINE = Memory;\n"
    )
    write(
        tmp_path,
        "0001_first.sql",
        "-- first\nCREATE TABLE IF NOT EXISTS xp.a (a Int8) ENGINE = Memory;\n"
        "CREATE TABLE IF NOT EXISTS xp.c (a Int8) ENGINE = Memory;\n",
    )
    (tmp_path / "README.md").write_text("not a migration")
    found = discover_migrations(tmp_path)
    assert [(m.version, m.name, len(m.statements)) for m in found] == [(1, "first", 2), (2, "second", 1)]
    assert found[0].label == "0001_first"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_short.sql": "SELECT 1;"}, "NNNN_description"),
        ({"0001_Upper.sql": "SELECT 1;"}, "NNNN_description"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}, "share version 0001"),
        ({"0001_empty.sql": "-- only a comment\n"}, "holds no statement"),
    ],
)
def test_discover_migrations_rejects_malformed_folders(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(MigrationError, match=message):
        discover_migrations(tmp_path)


def test_discover_migrations_of_missing_folder_is_empty(tmp_path: Path) -> None:
    assert discover_migrations(tmp_path / "none") == []


def migration(version: int, sql: str = "SELECT 1") -> Migration:
    return Migration(version=version, name=f"m{version}", sql=sql)


def test_plan_applies_only_pending_in_order() -> None:
    available = [migration(1), migration(2), migration(3)]
    applied = {1: AppliedMigration(1, "m1", available[0].checksum)}
    assert [m.version for m in plan_migrations(available, applied)] == [2, 3]
    everything = {m.version: AppliedMigration(m.version, m.name, m.checksum) for m in available}
    assert plan_migrations(available, everything) == []


def test_plan_refuses_an_edited_applied_migration() -> None:
    available = [migration(1, "SELECT 2")]
    applied = {1: AppliedMigration(1, "m1", migration(1, "SELECT 1").checksum)}
    with pytest.raises(MigrationError, match="0001_m1 was changed after it was applied"):
        plan_migrations(available, applied)


def test_plan_refuses_a_store_migrated_by_newer_code() -> None:
    with pytest.raises(MigrationError, match="0007_later applied, but sql/migrations has no such file"):
        plan_migrations([migration(1)], {7: AppliedMigration(7, "later", "abc")})


def test_checksum_ignores_line_ending_style() -> None:
    assert (
        migration(1, "SELECT 1;\r\nSELECT 2;\r\n").checksum == migration(1, "SELECT 1;\nSELECT 2;\n").checksum
    )


def test_load_query_by_name(tmp_path: Path) -> None:
    write(tmp_path, "exposure_counts.sql", "-- grain: variant\nSELECT {experiment:String}\n")
    assert load_query("exposure_counts", tmp_path).endswith("SELECT {experiment:String}\n")
    with pytest.raises(TerminalError, match="no query named 'missing'"):
        load_query("missing", tmp_path)
    with pytest.raises(TerminalError, match="lower-case"):
        load_query("../etc/passwd", tmp_path)


def test_repository_migrations_are_well_formed() -> None:
    for found in discover_migrations():
        assert found.sql.lstrip().startswith("--"), f"{found.label}.sql has no header comment"


# ------------------------------------------------------------------------------ store ownership (files only)


def test_store_lock_is_shared_within_a_process_and_says_who_owns_it(tmp_path: Path) -> None:
    first = acquire_store(tmp_path)
    second = acquire_store(tmp_path)
    assert first is second
    owner = read_owner(tmp_path)
    assert owner is not None and owner.pid == first.owner.pid
    first.advertise("http://127.0.0.1:8300")
    assert read_owner(tmp_path).api_url == "http://127.0.0.1:8300"  # type: ignore[union-attr]
    first.release()
    assert read_owner(tmp_path) is not None  # still held by the second reference
    second.release()
    assert read_owner(tmp_path) is None  # the file is emptied when the last reference goes


def test_store_owned_error_names_the_owner_and_the_way_out(tmp_path: Path) -> None:
    from xpcore.warehouse.chdb.ownership import StoreOwner

    error = StoreOwnedError(tmp_path, StoreOwner(pid=4242, command="xp stream run"))
    assert "pid 4242 (xp stream run)" in str(error)
    assert "xp up" in str(error)
    served = StoreOwnedError(tmp_path, StoreOwner(pid=1, api_url="http://127.0.0.1:8300"))
    assert "http://127.0.0.1:8300" in str(served)
