"""The export API (`GET /api/v1/export/{dataset}`) on a real chDB store: a walk pages through a table
with no row lost or repeated while rows are being inserted; the same auth as the dashboard; hostile input
(bad cursors, huge pages, injection in filters, missing/invalid tokens, writes) is refused clearly."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.export_api import page_json_schema
from dashboards.settings import DashboardSettings
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

READ = {"Authorization": "Bearer reader-token"}


def insert_exposures(warehouse: Warehouse, first: int, count: int, *, prefix: str = "u") -> None:
    """Exposures ``x<first>`` … with unit ids spread over the key order (so inserts land on both sides
    of any cursor), two experiments, times an hour apart."""
    warehouse.command(
        """
        INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
            variation_key, overridden, source, attributes, exposed_at, schema_version)
        SELECT concat('x', toString(number)), concat({prefix:String}, toString((number * 7919) % 1000)),
            'id', if(number % 2 = 0, 'checkout', 'search'), number % 2, toString(number % 2), false,
            'loadgen',
            map('country', 'NL'),
            toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalMinute(number % 600), 1
        FROM numbers({first:UInt64}, {count:UInt64})
        """,
        {"first": first, "count": count, "prefix": prefix},
    )


def make_client(warehouse: Warehouse, home: Path, **overrides: Any) -> TestClient:
    settings = DashboardSettings(
        home=home,
        clickhouse_url=None,
        store_wait_seconds=0,
        dashboard_read_tokens=SecretStr("reader-token"),
        dashboard_admin_tokens=SecretStr("admin-token"),
        **overrides,
    )
    return TestClient(create_app(settings, warehouse, lag_monitor=False), base_url="http://127.0.0.1:8200")


@pytest.fixture
def client(warehouse: Warehouse, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(warehouse, tmp_path / "xp-home", dashboard_export_api_per_minute=10_000) as c:
        yield c


def walk(client: TestClient, path: str, params: dict[str, Any], between: Any = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=READ)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        rows.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
        if between is not None:
            between()


def test_a_walk_loses_and_repeats_nothing_while_rows_are_inserted(
    warehouse: Warehouse, client: TestClient
) -> None:
    insert_exposures(warehouse, 0, 1000)
    before = {
        r["exposure_id"] for r in warehouse.query_arrow("SELECT exposure_id FROM xp.exposures").to_pylist()
    }
    inserted = iter(range(1000, 5000, 200))

    def insert_more() -> None:  # between pages: new rows before and after the cursor, and duplicates
        first = next(inserted, None)
        if first is not None:
            insert_exposures(warehouse, first, 200)
            insert_exposures(warehouse, first - 1000, 10)  # re-sent rows the walk has seen or will see

    rows = walk(client, "/api/v1/export/exposures", {"limit": 37}, between=insert_more)

    ids = [r["exposure_id"] for r in rows]
    assert len(ids) == len(set(ids))  # nothing repeated (re-sent duplicates and merges included)
    assert before <= set(ids)  # nothing that was there when the walk started is lost
    added = {f"x{n}" for n in range(1000, 5000)}
    assert set(ids) - before <= added  # new rows only when their key came after the cursor
    assert set(ids) - before and added - set(ids)  # (both happened: inserts landed on both sides)
    keys = [(r["experiment_key"], r["unit_id"], r["exposed_at"], r["exposure_id"]) for r in rows]
    assert keys == sorted(keys)  # the documented order
    # A new walk sees every distinct row now in the table, once each.
    now = warehouse.query_arrow("SELECT count() FROM xp.exposures FINAL").column(0)[0].as_py()
    again = walk(client, "/api/v1/export/exposures", {"limit": 500})
    assert len(again) == len({r["exposure_id"] for r in again}) == now > 1000


def test_pages_follow_the_documented_schema_and_filters(warehouse: Warehouse, client: TestClient) -> None:
    insert_exposures(warehouse, 0, 300)
    answer = client.get(
        "/api/v1/export/exposures",
        params={
            "experiment": "checkout",
            "since": "2024-05-17T01:00:00Z",
            "until": "2024-05-17T03:00",
            "limit": 5,
        },
        headers=READ,
    )
    page = answer.json()
    schema = page_json_schema()
    assert set(page) == set(schema["required"]) == set(schema["properties"])
    assert page["schema_version"] == 1 and page["row_count"] == 5 and page["next_cursor"]
    assert {c["name"]: c["type"] for c in page["columns"]}["exposed_at"] == "timestamp"
    assert {c["name"]: c["type"] for c in page["columns"]}["variation_id"] == "integer"
    rows = walk(
        client,
        "/api/v1/export/exposures",
        {"experiment": "checkout", "since": "2024-05-17T01:00:00Z", "until": "2024-05-17T03:00"},
    )
    expected = warehouse.query_arrow(
        "SELECT count() FROM xp.exposures FINAL WHERE experiment_key = 'checkout' AND "
        "exposed_at >= toDateTime64('2024-05-17 01:00:00', 3, 'UTC') AND "
        "exposed_at < toDateTime64('2024-05-17 03:00:00', 3, 'UTC')"
    )
    assert len(rows) == expected.column(0)[0].as_py() > 0
    assert {r["experiment_key"] for r in rows} == {"checkout"}
    index = client.get("/api/v1/export", headers=READ).json()
    assert set(index["datasets"]) == {"exposures", "events", "dead_letters", "results"}
    assert index["page_schema"] == schema


def test_a_page_is_cut_at_the_byte_limit_and_goes_on(warehouse: Warehouse, tmp_path: Path) -> None:
    insert_exposures(warehouse, 0, 400)
    with make_client(warehouse, tmp_path / "xp-home", dashboard_export_api_max_bytes=10_000) as client:
        first = client.get("/api/v1/export/exposures", params={"limit": 400}, headers=READ).json()
        assert 0 < first["row_count"] < 400 and first["next_cursor"]
        assert len(walk(client, "/api/v1/export/exposures", {"limit": 400})) == 400


def _cursor(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_hostile_requests_are_refused_clearly(warehouse: Warehouse, client: TestClient) -> None:
    insert_exposures(warehouse, 0, 50)
    path = "/api/v1/export/exposures"
    good = client.get(path, params={"limit": 10}, headers=READ).json()["next_cursor"]
    decoded = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))

    def status(
        params: dict[str, Any], headers: dict[str, str] = READ, method: str = "GET"
    ) -> tuple[int, str]:
        answer = client.request(method, path, params=params, headers=headers)
        return answer.status_code, answer.text

    # Tokens: none or a wrong one is 401; a read token reads.
    assert status({}, headers={})[0] == 401
    assert status({}, headers={"Authorization": "Bearer nope"})[0] == 401
    assert status({}, headers={"X-XP-Key": "reader-token"})[0] == 200
    assert client.get(path + "?token=reader-token").status_code == 401  # never a token in the URL
    # Writes: no method but GET/HEAD, whatever the token.
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert status({}, headers={"Authorization": "Bearer admin-token"}, method=method)[0] == 405
    # Cursors: garbage, tampered, from another query, oversized.
    for cursor in ("!!!", "e30", "a" * 5000, _cursor({**decoded, "v": 2}), _cursor({**decoded, "k": [1, 2]})):
        code, text = status({"cursor": cursor})
        assert code == 400 and "cursor is not valid" in text, (cursor[:20], code, text)
    assert status({"cursor": _cursor({**decoded, "k": ["a", "b", -5, "c"]})})[0] == 400
    assert status({"cursor": _cursor({**decoded, "k": ["a", "b", 10**20, "c"]})})[0] == 400
    assert status({"cursor": good, "experiment": "checkout"})[0] == 400  # another filter: not its walk
    assert status({"cursor": good, "since": "2024-01-01"})[0] == 400
    assert client.get("/api/v1/export/events", params={"cursor": good}, headers=READ).status_code == 400
    # Page sizes.
    for limit in ("0", "-1", "10001", "99999999999999999999", "1e3", "ten"):
        code, text = status({"limit": limit})
        assert code == 400 and "limit" in text, (limit, code)
    # Filters: injection is a value, never SQL; unknown parameters are refused, not ignored.
    code, text = status({"experiment": "checkout' OR 1=1 --"})
    assert code == 200 and json.loads(text)["rows"] == []
    code, text = status({"experiment": "x') UNION ALL SELECT * FROM system.users --"})
    assert code == 200 and json.loads(text)["rows"] == []
    duplicated = client.get(path + "?experiment=checkout&experiment=search", headers=READ)
    assert duplicated.status_code == 400 and "once" in duplicated.text
    code, text = status({"where": "1=1"})
    assert code == 400 and "unknown parameter" in text
    assert status({"reason": "x"})[0] == 400  # a filter of another dataset
    assert status({"since": "yesterday"})[0] == 400
    assert status({"since": "2024-05-18", "until": "2024-05-17"})[0] == 400
    assert client.get("/api/v1/export/system.users", headers=READ).status_code == 404
    assert client.get("/api/v1/export/..%2f..%2fetc", headers=READ).status_code == 404
    assert warehouse.query_arrow("SELECT count() FROM xp.exposures").column(0)[0].as_py() == 50


def test_requests_over_the_rate_are_told_to_wait(warehouse: Warehouse, tmp_path: Path) -> None:
    with make_client(warehouse, tmp_path / "xp-home", dashboard_export_api_per_minute=3) as client:
        codes = [client.get("/api/v1/export/events", headers=READ).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = client.get("/api/v1/export/events", headers=READ)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # Another token has its own allowance.
        other = client.get("/api/v1/export/events", headers={"Authorization": "Bearer admin-token"})
        assert other.status_code == 200
