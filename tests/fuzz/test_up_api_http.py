"""The `xp up` warehouse API under generated hostile requests, on a real chDB store.

Statements assembled from fragments of the known attacks (DDL, INSERT INTO FUNCTION file(), url(),
comments, quoting, several statements) and hostile headers: the API never answers a 500, the set of
tables in the store never changes, and no file appears where a statement tried to write one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from xpcore.warehouse import Warehouse
from xpstream.up.admin import allowed_hosts, build_admin_app
from xpstream.up.component_health import Health

TOKEN = "fuzz-owner-token-0123456789"
PORT = 8210
CANARY = Path("/tmp/xp-fuzz-canary.txt")

_FRAGMENTS = [
    "SELECT",
    "1",
    "*",
    "FROM",
    "xp.exposures",
    "xp.job_runs",
    "WITH x AS (SELECT 1)",
    "INSERT INTO",
    "FUNCTION",
    f"file('{CANARY}', 'LineAsString', 'l String')",
    f"file('{CANARY}')",
    "url('http://127.0.0.1:9/x')",
    "s3('http://127.0.0.1:9/b/k')",
    "remote('127.0.0.1:9000', system.one)",
    "executable('id', 'TSV', 'x String')",
    "`file`(",
    "fIlE (",
    "CREATE TABLE xp.pwned (x String) ENGINE=Memory",
    "DROP TABLE xp.job_runs",
    "ALTER TABLE xp.job_runs ADD COLUMN y UInt8",
    "ATTACH TABLE xp.evil",
    "TRUNCATE TABLE xp.job_runs",
    "INTO OUTFILE '/tmp/xp-fuzz-canary.txt'",
    "SETTINGS engine_file_truncate_on_insert=1",
    "/*",
    "*/",
    "--",
    "\n",
    ";",
    "'",
    '"',
    "(",
    ")",
    "VALUES ('x')",
    "(job)",
    "OPTIMIZE TABLE xp.job_runs",
    "ALTER TABLE xp.job_runs DELETE WHERE 1",
    "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1",
    "GRANT ALL ON *.* TO default",
    "{p:String}",
]
STATEMENTS = st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=10).map(" ".join)


def _tables(warehouse: Warehouse) -> list[str]:
    rows = warehouse.query_arrow("SELECT name FROM system.tables WHERE database = 'xp' ORDER BY name")
    return [row["name"] for row in rows.to_pylist()]


@pytest.fixture
def api(warehouse: Warehouse) -> Iterator[TestClient]:
    app = build_admin_app(Health(), warehouse, [TOKEN], port=PORT, hosts=allowed_hosts("127.0.0.1"))
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}", client=("127.0.0.1", 50000)) as client:
        yield client


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    sql=STATEMENTS,
    endpoint=st.sampled_from(["/v1/warehouse/command", "/v1/warehouse/query"]),
    read_only=st.booleans(),
    parameters=st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["p", "q"]), st.text(max_size=10), max_size=2)
    ),
)
def test_no_statement_changes_the_schema_or_touches_a_file(
    api: TestClient,
    warehouse: Warehouse,
    sql: str,
    endpoint: str,
    read_only: bool,
    parameters: dict[str, str] | None,
) -> None:
    before = _tables(warehouse)
    body = json.dumps({"sql": sql, "read_only": read_only, "parameters": parameters})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    answer = api.post(endpoint, content=body, headers=headers)
    assert answer.status_code != 500, (sql, answer.text[:300])
    assert answer.status_code < 500 or answer.status_code == 503, (sql, answer.status_code)
    assert _tables(warehouse) == before, sql
    assert not CANARY.exists(), sql


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    path=st.sampled_from(
        [
            "/v1/warehouse",
            "/v1/warehouse/query",
            "/v1/warehouse/command",
            "/v1/warehouse/insert?table=xp.job_runs",
            "/v1/warehouse/insert?table=system.one",
            "/healthz",
            "/v1/../healthz",
        ]
    ),
    body=st.binary(max_size=200),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Host": st.sampled_from(["evil.example", "127.0.0.1:8210", "localhost", "127.0.0.1.nip.io:8210"]),
            "Origin": st.sampled_from(["http://evil.example", "null", "http://127.0.0.1:8210"]),
            "Content-Type": st.sampled_from(
                ["application/json", "text/plain", "application/vnd.apache.arrow.stream"]
            ),
            "Authorization": st.sampled_from([f"Bearer {TOKEN}", "Bearer nope", ""]),
        },
    ),
)
def test_any_request_is_answered_without_a_server_error(
    api: TestClient, warehouse: Warehouse, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    before = _tables(warehouse)
    answer = api.request(method, path, content=body, headers=headers)
    assert answer.status_code < 500, (method, path, headers, answer.status_code, answer.text[:300])
    if answer.status_code < 300 and answer.request.url.path.startswith("/v1/"):
        assert headers.get("Authorization") == f"Bearer {TOKEN}"
        assert headers.get("Origin") in (None, "http://127.0.0.1:8210")
    assert _tables(warehouse) == before
