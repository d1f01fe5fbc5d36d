"""Every dashboard route under generated hostile requests, on a real chDB store seeded with sample data:
never a 500, and every answer carries the browser-hardening headers (CSP, frame and referrer policy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.sample_data import seed_sample_data
from dashboards.settings import DashboardSettings
from xpcore.warehouse import open_warehouse

KEYS = st.one_of(
    st.sampled_from(
        ["checkout-button", "nope", "..", "%2e%2e%2fetc", "a" * 300, "<script>", "x'; DROP TABLE xp.events"]
    ),
    st.text(max_size=12),
).map(lambda key: quote(key, safe=""))
_QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "frequentist",
            "bayesian",
            "sequential",
            "2024-01-01",
            "not-a-date",
            "-1",
            "1e309",
            "NaN",
            "country",
        ]
    ),
    st.text(max_size=10),
)
QUERIES = st.dictionaries(
    st.sampled_from(
        [
            "method",
            "since",
            "until",
            "segment",
            "top",
            "keys",
            "limit",
            "experiment",
            "key",
            "token",
            "next",
            "steps",
            "window",
            "ordered",
            "cursor",
            "event_name",
            "reason",
            "team",
            "metric",
            "experiments",
        ]
    ),
    _QUERY_VALUES,
    max_size=4,
)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/",
            "/health",
            "/compare",
            "/quality",
            "/audit",
            "/api/experiments",
            "/api/health",
            "/api/compare",
            "/api/quality",
            "/api/audit",
            "/api/activity",
            "/program",
            "/api/program",
            "/quality/report/",
            "/quality/report/../../etc/passwd",
            "/static/../app.py",
            "/login",
            "/logout",
            "/api/admin/cache/clear",
            "/docs/statistics.md",
            "/api/v1/export",
        ]
    ),
    st.one_of(
        st.sampled_from(["exposures", "events", "dead_letters", "results", "quality", "..", "system.users"]),
        st.text(max_size=12).map(lambda name: quote(name, safe="")),
    ).map(lambda dataset: f"/api/v1/export/{dataset}"),
    KEYS.map(lambda k: f"/experiments/{k}"),
    KEYS.map(lambda k: f"/api/experiments/{k}/results"),
    KEYS.map(lambda k: f"/api/experiments/{k}/health"),
    KEYS.map(lambda k: f"/api/experiments/{k}/funnel"),
    KEYS.map(lambda k: f"/api/experiments/{k}/funnel/realtime"),
    st.tuples(
        KEYS,
        st.sampled_from(["daily", "results", "units", "x"]),
        st.sampled_from(["csv", "xlsx", "json", "parquet", "exe"]),
    ).map(lambda t: f"/api/experiments/{t[0]}/export/{t[1]}.{t[2]}"),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("fuzz-dashboard") / "xp-home"
    settings = DashboardSettings(
        home=home, clickhouse_url=None, store_wait_seconds=0, dashboard_export_api_per_minute=1_000_000
    )
    warehouse = open_warehouse(settings)
    try:
        seed_sample_data(warehouse, units=300, minutes=10, quality=False)
        with TestClient(
            create_app(settings, warehouse, lag_monitor=False), base_url="http://127.0.0.1:8200"
        ) as c:
            yield c
    finally:
        warehouse.close()


@given(
    method=st.sampled_from(["GET", "GET", "POST", "HEAD", "DELETE"]),
    path=PATHS,
    query=QUERIES,
    origin=st.sampled_from([None, "http://evil.example", "null"]),
    body=st.binary(max_size=64),
)
def test_any_request_is_answered_with_the_hardening_headers_and_never_a_500(
    client: TestClient, method: str, path: str, query: dict[str, str], origin: str | None, body: bytes
) -> None:
    headers = {"Origin": origin} if origin else {}
    answer = client.request(method, path, params=query, headers=headers, content=body or None)
    assert answer.status_code < 500, (method, path, query, answer.status_code, answer.text[:300])
    assert answer.headers.get("x-frame-options") == "DENY", (path, answer.status_code)
    assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), path
    assert answer.headers.get("referrer-policy") == "no-referrer"
    if method == "POST" and origin == "http://evil.example":
        assert answer.status_code in (403, 404, 405), (path, answer.status_code)
