"""POST /v1/assign's fast path (assignment.service.fast_assign) answers exactly like the Starlette
endpoint: same status, body, headers, exposures and metrics, for common and unusual requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment.registry import RegistrySnapshot
from assignment.service.app import BrowserGuard, Service, build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from assignment.service.fast_assign import FastAssign
from schemas import Override
from tests.unit.service.conftest import US_UNITS, make_service

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
BODIES: list[Any] = [
    {"attributes": US_UNITS[0]},
    {"attributes": US_UNITS[1], "features": ["checkout", "nope"]},
    {"attributes": US_UNITS[2], "expose": False},
    {"attributes": {"id": "qa", "email": "x@example.com", "country": "US"}},
    {"attributes": {"id": 12345, "country": "CA", "device_id": 7.5}},
    {"attributes": {"id": "u3", "nested": {"a": [1, None, True]}}, "features": None},
    {"attributes": {}},
    {"attributes": US_UNITS[4], "expose": "true"},  # pydantic's lax bool: the Starlette path
    {"attributes": US_UNITS[5], "sticky_bucket_docs": []},  # sticky bucketing: the Starlette path
    {"attributes": US_UNITS[6], "surprise": 1},  # unknown field: 422 either way
    {"attributes": 3},
    {"features": ["checkout"]},
    {"attributes": {"id": "u7"}, "features": ["checkout", 3]},
    [1, 2],
    "not json",
]


def _service(**kwargs: Any) -> Service:
    override = Override(
        experiment_key="checkout-exp", unit_id="u9", variation_id=1, expires_at=NOW + timedelta(days=1)
    )
    snapshot = RegistrySnapshot(overrides={("checkout-exp", "u9"): override})
    return make_service(sink=MemorySink(), clock=lambda: NOW, snapshot=snapshot, **kwargs)


@pytest.fixture
def pair() -> Iterator[tuple[TestClient, TestClient, Service, Service]]:
    fast_service, slow_service = _service(), _service()
    slow_app, fast_app = build_app(slow_service), build_app(fast_service)
    assert isinstance(slow_app, BrowserGuard) and isinstance(fast_app, BrowserGuard)
    assert isinstance(fast_app.fast_assign, FastAssign)
    slow_app.fast_assign = None  # the plain Starlette endpoint
    fallback = fast_app.fast_assign.fallback
    fast_service.fallbacks = 0  # type: ignore[attr-defined]

    async def counting_fallback(scope: Any, receive: Any, send: Any) -> None:
        fast_service.fallbacks += 1  # type: ignore[attr-defined]
        await fallback(scope, receive, send)

    fast_app.fast_assign.fallback = counting_fallback
    with TestClient(fast_app) as fast, TestClient(slow_app) as slow:
        yield fast, slow, fast_service, slow_service


def _post(client: TestClient, body: Any, **headers: str) -> tuple[int, Any, str]:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = client.post(
        "/v1/assign", content=content, headers={"content-type": "application/json", **headers}
    )
    return response.status_code, response.json(), response.headers["content-type"]


def test_fast_path_answers_like_the_starlette_endpoint(pair: Any) -> None:
    fast, slow, fast_service, slow_service = pair
    bodies = [*BODIES, {"attributes": {"id": "u9", "country": "US"}}]  # an override: the general path
    for body in bodies:
        assert _post(fast, body) == _post(slow, body), body
    for body in [{"attributes": unit} for unit in US_UNITS[:60]]:  # the dedup window applies to both
        assert _post(fast, body) == _post(slow, body)
    assert fast_service.fallbacks == 8  # the unusual bodies above
    assert fast_service.sink.records == slow_service.sink.records
    assert len(fast_service.sink.records) > 30
    assert len(fast_service.dedup) == len(slow_service.dedup)


def test_fast_path_counts_requests_and_latency(pair: Any) -> None:
    fast = pair[0]
    for unit in US_UNITS[:5]:
        assert _post(fast, {"attributes": unit})[0] == 200
    assert _post(fast, {"attributes": 3})[0] == 422
    metrics = fast.get("/metrics").text
    assert 'xp_service_requests_total{endpoint="assign",status="200"} 5.0' in metrics
    assert 'xp_service_requests_total{endpoint="assign",status="422"} 1.0' in metrics
    assert 'xp_service_request_seconds_count{endpoint="assign"} 6.0' in metrics


def test_fast_path_keeps_auth_and_cors() -> None:
    service = _service(keys=KeyRing(client_keys=("client-key",)))
    with TestClient(build_app(service)) as client:
        assert _post(client, {"attributes": {"id": "u1"}})[0] == 401
        assert _post(client, {"attributes": {"id": "u1"}}, authorization="Bearer nope")[0] == 401
        assert _post(client, {"attributes": {"id": "u1"}}, authorization="Bearer client-key")[0] == 200
        assert _post(client, {"attributes": {"id": "u1"}}, **{"x-xp-key": "client-key"})[0] == 200
        for first, second, status in (("client-key", "nope", 200), ("nope", "client-key", 401)):
            repeated = client.post(  # repeated headers: the first counts, as in Starlette
                "/v1/assign",
                content=b'{"attributes": {"id": "u1"}}',
                headers=[
                    ("content-type", "application/json"),
                    ("authorization", f"Bearer {first}"),
                    ("authorization", f"Bearer {second}"),
                ],
            )
            assert repeated.status_code == status
        response = client.post(
            "/v1/assign",
            json={"attributes": {"id": "u1"}},
            headers={"origin": "https://app.test", "x-xp-key": "client-key"},
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"


def test_large_and_chunked_bodies_take_the_starlette_path() -> None:
    service = _service(max_body_bytes=2048)
    with TestClient(build_app(service)) as client:
        big = {"attributes": {"id": "u1", "blob": "x" * 4000}}
        assert client.post("/v1/assign", json=big).status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b'{"attributes": '
            yield b'{"id": "u1"}}'

        response = client.post(  # no Content-Length
            "/v1/assign", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200
        assert set(response.json()["features"]) == {"checkout", "banner", "pricing"}
