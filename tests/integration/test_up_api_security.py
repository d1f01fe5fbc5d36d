"""Issue #13 item 1: the `xp up` warehouse API on a real chDB store (in-process ASGI, real requests).

Every request under /v1/ authenticates, loopback included; a foreign Origin or an unexpected Host is
refused; JSON endpoints take application/json only and /insert the Arrow stream type only; /command runs
only what the routed commands send (INSERT, ALTER … DELETE, OPTIMIZE on xp tables): no DDL, no file(),
url() … Each request below is one the probe of the issue sent with success.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from xpcore.warehouse import Warehouse
from xpcore.warehouse.remote import ARROW_STREAM, arrow_to_ipc
from xpstream.up.admin import allowed_hosts, build_admin_app
from xpstream.up.component_health import Health

pytestmark = pytest.mark.integration

TOKEN = "owner-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PORT = 8210
BASE = f"http://127.0.0.1:{PORT}"


def table_exists(warehouse: Warehouse, name: str) -> bool:
    rows = warehouse.query_arrow(
        "SELECT count() AS n FROM system.tables WHERE database = 'xp' AND name = {name:String}",
        {"name": name},
    ).to_pylist()
    return bool(rows[0]["n"])


@pytest.fixture
def api(warehouse: Warehouse) -> Iterator[TestClient]:
    app = build_admin_app(Health(), warehouse, [TOKEN], port=PORT, hosts=allowed_hosts("127.0.0.1"))
    with TestClient(app, base_url=BASE, client=("127.0.0.1", 50000)) as client:
        yield client


def command(api: TestClient, sql: str, **headers: str) -> tuple[int, dict[str, object]]:
    sent = {"Content-Type": "application/json", **AUTH, **headers}
    answer = api.post("/v1/warehouse/command", content=json.dumps({"sql": sql}), headers=sent)
    return answer.status_code, answer.json()


def query(api: TestClient, sql: str, read_only: bool = False) -> int:
    body = {"sql": sql, "read_only": read_only}
    return api.post("/v1/warehouse/query", json=body, headers=AUTH).status_code


# ---------------------------------------------------------------------------------------------- who


def test_loopback_clients_need_the_token_too(api: TestClient, warehouse: Warehouse) -> None:
    create = json.dumps({"sql": "INSERT INTO xp.job_runs (job) VALUES ('x')"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = api.post(
            "/v1/warehouse/command", content=create, headers={"Content-Type": "application/json", **headers}
        )
        assert answer.status_code == 401
        assert TOKEN not in answer.text
    assert api.get("/v1/warehouse").status_code == 401
    assert api.get("/v1/warehouse", headers=AUTH).status_code == 200


def test_healthz_stays_open_and_tells_no_secret(api: TestClient) -> None:
    answer = api.get("/healthz")
    assert answer.status_code == 200
    assert TOKEN not in answer.text


def test_a_foreign_origin_is_refused(api: TestClient, warehouse: Warehouse) -> None:
    # the probe: a web page posting text/plain (a CORS "simple" request) with the right token
    status, _ = command(api, "OPTIMIZE TABLE xp.job_runs", Origin="http://evil.example")
    assert status == 403
    status, _ = command(api, "OPTIMIZE TABLE xp.job_runs", Origin=f"http://127.0.0.1:{PORT}")
    assert status == 200  # the API's own origin


@pytest.mark.parametrize(
    "host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", "localhost.evil.example", ""]
)
def test_an_unexpected_host_is_refused(api: TestClient, host: str) -> None:
    answer = api.get("/v1/warehouse", headers={**AUTH, "Host": host})
    assert answer.status_code == 403


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", "localhost"])
def test_the_loopback_names_of_the_api_are_accepted(api: TestClient, host: str) -> None:
    assert api.get("/v1/warehouse", headers={**AUTH, "Host": host}).status_code == 200


# ---------------------------------------------------------------------------------------------- bodies


def test_json_endpoints_take_application_json_only(api: TestClient, warehouse: Warehouse) -> None:
    body = json.dumps({"sql": "CREATE TABLE xp.pwned (x String) ENGINE = Memory"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        answer = api.post(
            "/v1/warehouse/command", content=body, headers={**AUTH, "Content-Type": content_type}
        )
        assert answer.status_code == 415
    answer = api.post(
        "/v1/warehouse/query",
        content=json.dumps({"sql": "SELECT 1"}),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415
    assert not table_exists(warehouse, "pwned")


def test_insert_takes_exactly_the_arrow_stream_type(api: TestClient, warehouse: Warehouse) -> None:
    data = arrow_to_ipc(pa.table({"job": ["a"]}))
    url = "/v1/warehouse/insert?table=xp.job_runs"
    assert api.post(url, content=data, headers={**AUTH, "Content-Type": "text/plain"}).status_code == 415
    answer = api.post(url, content=data, headers={**AUTH, "Content-Type": ARROW_STREAM})
    assert answer.status_code == 200 and answer.json() == {"rows": 1}


def test_insert_only_into_xp_tables(api: TestClient, warehouse: Warehouse) -> None:
    data = arrow_to_ipc(pa.table({"x": [1]}))
    for table in ("system.query_log", "default.t", "xp.t;DROP", "xp"):
        answer = api.post(
            f"/v1/warehouse/insert?table={table}",
            content=data,
            headers={**AUTH, "Content-Type": ARROW_STREAM},
        )
        assert answer.status_code in (400, 403), table


# ---------------------------------------------------------------------------------------------- what runs


def test_ddl_is_refused_on_command(api: TestClient, warehouse: Warehouse) -> None:
    for sql in (
        "CREATE TABLE xp.pwned (x String) ENGINE = Memory",
        "DROP TABLE xp.job_runs",
        "ALTER TABLE xp.job_runs ADD COLUMN pwned String",
        "ALTER TABLE xp.job_runs DELETE WHERE 1, DROP COLUMN job",
        "RENAME TABLE xp.job_runs TO xp.gone",
        "TRUNCATE TABLE xp.job_runs",
        "ATTACH TABLE xp.pwned",
        "SYSTEM SHUTDOWN",
        "GRANT ALL ON *.* TO default",
    ):
        status, body = command(api, sql)
        assert status == 403, sql
        assert body["error"]["type"] == "ReadOnlyError"  # type: ignore[index]
    assert not table_exists(warehouse, "pwned") and table_exists(warehouse, "job_runs")
    columns = warehouse.query_arrow("DESCRIBE TABLE xp.job_runs").column("name").to_pylist()
    assert "pwned" not in columns and "job" in columns


def test_files_and_urls_are_refused_on_command_and_query(
    api: TestClient, warehouse: Warehouse, tmp_path: Path
) -> None:
    target = tmp_path / "written.txt"
    status, _ = command(
        api,
        f"INSERT INTO FUNCTION file('{target}', 'LineAsString', 'l String') SELECT 'overwritten'"
        " SETTINGS engine_file_truncate_on_insert = 1",
    )
    assert status == 403
    status, _ = command(
        api, "INSERT INTO xp.job_runs (job) SELECT * FROM file('/etc/passwd', 'LineAsString')"
    )
    assert status == 403
    status, _ = command(
        api, "INSERT INTO xp.job_runs (job) SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')"
    )
    assert status == 403
    for read_only in (False, True):
        assert query(api, "SELECT * FROM file('/etc/passwd', 'LineAsString')", read_only) == 403
        assert query(api, "SELECT file('/etc/passwd')", read_only) == 403
        assert query(api, f"SELECT 1 INTO OUTFILE '{target}'", read_only) == 403
        assert (
            query(
                api,
                f"WITH x AS (SELECT 1) INSERT INTO FUNCTION file('{target}', 'LineAsString', 'l String')"
                " SELECT 'overwritten'",
                read_only,
            )
            == 403
        )
        assert query(api, "CREATE TABLE xp.pwned (x String) ENGINE = Memory", read_only) == 403
    assert not target.exists()
    assert warehouse.query_arrow("SELECT count() AS n FROM xp.job_runs").to_pylist() == [{"n": 0}]
    assert not table_exists(warehouse, "pwned")


def test_what_the_routed_commands_send_still_runs(api: TestClient, warehouse: Warehouse) -> None:
    for sql in (
        "INSERT INTO xp.job_runs (job, outcome) VALUES ('etl', 'ok')",
        "INSERT INTO xp.job_runs (job, outcome) SELECT job, 'again' FROM xp.job_runs WHERE job = 'etl'",
        "ALTER TABLE xp.job_runs DELETE WHERE outcome = 'again' SETTINGS mutations_sync = 2",
        "ALTER TABLE xp.job_runs UPDATE outcome = 'failed' WHERE job = 'etl' SETTINGS mutations_sync = 2",
        "OPTIMIZE TABLE xp.job_runs FINAL",
    ):
        status, body = command(api, sql)
        assert (status, body) == (200, {"ok": True}), sql
    rows = warehouse.query_arrow("SELECT job, outcome FROM xp.job_runs").to_pylist()
    assert rows == [{"job": "etl", "outcome": "failed"}]
