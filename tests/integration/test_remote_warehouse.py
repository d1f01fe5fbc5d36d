"""The warehouse API of `xp up` and its client, on a real chDB store (in-process ASGI, no subprocess).

The same calls through :class:`RemoteWarehouse` and directly on the store must give the same rows;
read-only stays read-only; inserts keep their dedup token; errors keep their class; tokens are checked.
Issue #13: every request authenticates (loopback included), Host/Origin/content type are checked, and
only the statements the routed commands need run (no DDL, nothing outside the database).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from xpcore.errors import ConfigError, ReadOnlyError, TerminalError
from xpcore.warehouse import Warehouse
from xpcore.warehouse.remote import RemoteWarehouse
from xpstream.up.admin import allowed_hosts, build_admin_app
from xpstream.up.component_health import Health

pytestmark = pytest.mark.integration

TABLE = """
CREATE TABLE IF NOT EXISTS xp.remote_probe (id UInt32, name String, at DateTime64(3, 'UTC'))
ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100
"""


OWNER_TOKEN = "owner-token-for-tests"


def api_client(warehouse: Warehouse, tokens: list[str], client_host: str = "192.0.2.7") -> TestClient:
    app = build_admin_app(
        Health(), warehouse, tokens, port=80, hosts=allowed_hosts("127.0.0.1", ["testserver"])
    )
    return TestClient(app, base_url="http://testserver", client=(client_host, 50000))


def remote(
    warehouse: Warehouse, tokens: list[str], token: str | None = None, client_host: str = "192.0.2.7"
) -> RemoteWarehouse:
    client = api_client(warehouse, tokens, client_host)
    return RemoteWarehouse("http://testserver", token=token, client=client)


@pytest.fixture
def through_api(warehouse: Warehouse) -> Iterator[RemoteWarehouse]:
    store = remote(warehouse, [OWNER_TOKEN], token=OWNER_TOKEN)
    try:
        yield store
    finally:
        store.close()


def test_query_with_typed_parameters_gives_the_same_rows_as_the_store(
    warehouse: Warehouse, through_api: RemoteWarehouse
) -> None:
    sql = (
        "SELECT {s:String} AS s, {i:Int64} AS i, {f:Float64} AS f, {d:Date} AS d,"
        " {t:DateTime64(6, 'UTC')} AS t, {u:UUID} AS u, {dec:Decimal(10, 3)} AS dec,"
        " {a:Array(String)} AS a, {m:Map(String, UInt8)} AS m,"
        " {n:Nullable(String)} AS n, {b:Bool} AS b"
    )
    parameters = {
        "s": "it's a \\ test\n",
        "i": -42,
        "f": 1.5,
        "d": dt.date(2026, 11, 25),
        "t": dt.datetime(2026, 11, 25, 20, 1, 2, 345678, tzinfo=dt.UTC),
        "u": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "dec": decimal.Decimal("3.250"),
        "a": ["x", "y'z"],
        "m": {"k": 1},
        "n": None,
        "b": True,
    }
    direct = warehouse.query_arrow(sql, parameters)
    routed = through_api.query_arrow(sql, parameters)
    assert routed.equals(direct)
    assert routed.column("s")[0].as_py() == "it's a \\ test\n"
    assert routed.column("t")[0].as_py() == parameters["t"]
    assert through_api.kind == "chdb" and "via http://testserver" in through_api.location


def test_insert_keeps_the_dedup_token_and_command_runs(
    warehouse: Warehouse, through_api: RemoteWarehouse
) -> None:
    warehouse.command(TABLE)  # DDL is a migration's, in the owner: not through the API (issue #13)
    at = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.uint32()),
            "name": ["a", "b", "c"],
            "at": pa.array([at] * 3, pa.timestamp("ms", tz="UTC")),
        }
    )
    assert through_api.insert_arrow("xp.remote_probe", data, dedup_token="batch-1") == 3
    through_api.insert_arrow("xp.remote_probe", data, dedup_token="batch-1")  # a re-send: no-op
    rows = through_api.query_arrow("SELECT count() AS n, sum(id) AS s FROM xp.remote_probe").to_pylist()
    assert rows == [{"n": 3, "s": 6}]
    empty = through_api.query_arrow("SELECT id FROM xp.remote_probe WHERE id > {x:UInt32}", {"x": 10})
    assert empty.num_rows == 0


def test_read_only_stays_read_only_through_the_api(
    warehouse: Warehouse, through_api: RemoteWarehouse
) -> None:
    warehouse.command(TABLE)
    with pytest.raises(TerminalError, match=r"(?i)readonly|read-only|cannot execute"):
        through_api.query_arrow("INSERT INTO xp.remote_probe (id) VALUES (9)", read_only=True)
    assert through_api.query_arrow("SELECT count() AS n FROM xp.remote_probe").to_pylist() == [{"n": 0}]


def test_errors_keep_their_class_and_message(through_api: RemoteWarehouse) -> None:
    with pytest.raises(TerminalError, match=r"UNKNOWN_TABLE|does not exist"):
        through_api.query_arrow("SELECT * FROM xp.no_such_table")
    with pytest.raises(TerminalError, match="placeholder"):
        through_api.query_arrow("SELECT 1", {"unused": 1})


def test_tokens_are_required_from_other_hosts_when_configured(warehouse: Warehouse) -> None:
    with pytest.raises(ConfigError, match="token"):
        remote(warehouse, ["s3cret"])
    with pytest.raises(ConfigError, match="token"):
        remote(warehouse, ["s3cret"], token="wrong")
    for store in (
        remote(warehouse, ["other", "s3cret"], token="s3cret"),
        remote(warehouse, [OWNER_TOKEN, "s3cret"], token=OWNER_TOKEN, client_host="127.0.0.1"),
    ):
        try:
            assert store.query_arrow("SELECT 1 AS one").to_pylist() == [{"one": 1}]
        finally:
            store.close()


def test_the_client_gets_the_guard_refusal_as_read_only_error(
    warehouse: Warehouse, through_api: RemoteWarehouse
) -> None:
    with pytest.raises(ReadOnlyError, match="schema changes are migrations"):
        through_api.command("CREATE TABLE xp.pwned (x String) ENGINE = Memory")
    with pytest.raises(ReadOnlyError, match=r"file\(\) reaches outside"):
        through_api.query_arrow("SELECT * FROM file('/etc/passwd', 'LineAsString')")
    with pytest.raises(ReadOnlyError, match="outside database xp"):
        through_api.insert_arrow("system.one", pa.table({"dummy": pa.array([1], pa.uint8())}))
