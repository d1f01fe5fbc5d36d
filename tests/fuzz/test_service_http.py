"""Every route of the assignment service under generated hostile requests (in-process, a MemorySink).

- schemathesis walks the service's own OpenAPI document (valid and invalid requests per operation);
- the collector: any batch of hostile records is answered 202 with each record accepted or dead-lettered
  (counts reconcile with what reached the sink), or refused as a whole with nothing produced;
- any route, any method, any body and content type: never a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from schemas import DeadLetter, MetricEvent, RecordCodec
from tests.fuzz.strategies import JSON_VALUES, event_objects, exposure_objects, nested
from tests.unit.service.conftest import make_service
from xpcore.kafka.topics import DEAD_LETTERS, EVENTS, EXPOSURES

CLIENT_KEY, ADMIN_KEY = "ck_fuzz", "ak_fuzz"
_KEYS = KeyRing.from_secrets(CLIENT_KEY, f"fuzzer:{ADMIN_KEY}", named=True)
_ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# max_streams=0: GET /sub/{client_key} answers 503 instead of streaming for ever (its auth and
# parameter checks still run first); the stream itself is tested in tests/unit/service/test_streams.py
_openapi_app = build_app(make_service(keys=_KEYS, max_streams=0), manage_lifecycle=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", _openapi_app)
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@schema.parametrize()
def test_openapi_operations_never_answer_a_server_error(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), **_ADMIN}
    response = case.call()
    if response.status_code == 503 and case.formatted_path.startswith("/sub/"):
        assert "XP_SERVICE_MAX_STREAMS" in response.text  # the documented refusal, not a crash
        return
    assert response.status_code < 500, (
        case.method,
        case.formatted_path,
        response.status_code,
        response.text[:300],
    )


def _collector() -> tuple[TestClient, MemorySink]:
    sink = MemorySink()
    service = make_service(keys=_KEYS, sink=sink, max_streams=0)
    return TestClient(build_app(service, manage_lifecycle=False)), sink


@given(
    st.lists(exposure_objects() | JSON_VALUES, max_size=8),
    st.lists(event_objects() | JSON_VALUES, max_size=8),
)
def test_collector_accepts_or_dead_letters_every_record(exposures: list[Any], events: list[Any]) -> None:
    client, sink = _collector()
    body = json.dumps({"exposures": exposures, "events": events}, allow_nan=True)
    response = client.post(
        "/v1/events", content=body, headers={"X-XP-Key": CLIENT_KEY, "Content-Type": "application/json"}
    )
    assert response.status_code < 500, response.text
    by_topic: dict[str, list[bytes]] = {EXPOSURES: [], EVENTS: [], DEAD_LETTERS: []}
    for topic, _, value in sink.records:
        by_topic[topic].append(value)
    if response.status_code != 202:  # refused as a whole: nothing produced
        assert not sink.records, response.text
        return
    answer = response.json()
    assert answer["accepted"] + answer["rejected"] == len(exposures) + len(events)
    assert len(by_topic[EXPOSURES]) + len(by_topic[EVENTS]) == answer["accepted"]
    assert len(by_topic[DEAD_LETTERS]) == answer["rejected"]
    for value in by_topic[DEAD_LETTERS]:
        letter = RecordCodec(DeadLetter, max_record_bytes=10_000_000).decode(value)
        assert letter.reason.value != "internal_error", letter.detail
    for value in by_topic[EVENTS]:
        event = RecordCodec(MetricEvent).decode(value)
        assert event.value is None or (math.isfinite(event.value) and math.isfinite(event.value**2))


def test_collector_refuses_a_deeply_nested_body_without_a_server_error() -> None:
    client, sink = _collector()
    body = b'{"events": [' + nested(10_000) + b"]}"
    response = client.post(
        "/v1/events", content=body, headers={"X-XP-Key": CLIENT_KEY, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert not sink.records


_PATHS = st.sampled_from(
    [
        "/v1/assign",
        "/v1/assign/batch",
        "/v1/events",
        "/v1/overrides",
        "/v1/overrides/checkout-exp/u1",
        f"/api/features/{CLIENT_KEY}",
        "/api/features/..%2F..%2Fetc%2Fpasswd",
        f"/api/eval/{CLIENT_KEY}",
        f"/api/eval/{ADMIN_KEY}",
        f"/sub/{CLIENT_KEY}",
        "/sub/wrong",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/checkout",
        "/ofrep/v1/evaluate/flags/..%2Fcheckout",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ]
)
_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
        "application/json; charset=latin-1",
    ]
)
_BODIES = st.one_of(st.binary(max_size=200), JSON_VALUES.map(lambda v: json.dumps(v).encode()))
_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Origin": st.sampled_from(["http://evil.example", "null", "http://127.0.0.1:8100"]),
        "X-XP-Key": st.sampled_from([CLIENT_KEY, ADMIN_KEY, "wrong", ""]),
        "X-API-Key": st.sampled_from([CLIENT_KEY, "wrong", ""]),
        "If-None-Match": st.sampled_from(['"x"', "*", ""]),
        "Authorization": st.sampled_from(
            [f"Bearer {ADMIN_KEY}", "Bearer", "Basic Zm9vOmJhcg==", "Bearer \u00e9"]
        ),
    },
)


@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    _PATHS,
    _CONTENT_TYPES,
    _BODIES,
    _HEADERS,
)
def test_any_request_to_any_route_is_never_a_server_error(
    method: str, path: str, content_type: str, body: bytes, headers: dict[str, str]
) -> None:
    client, _ = _collector()
    if content_type:
        headers["Content-Type"] = content_type
    raw_headers = {k: v.encode() for k, v in headers.items()}  # UTF-8 bytes, as a hostile client sends
    response = client.request(method, path, content=body, headers=raw_headers)
    if response.status_code == 503 and path.startswith("/sub/"):
        assert "XP_SERVICE_MAX_STREAMS" in response.text  # max_streams=0: the documented refusal
        return
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    if path.startswith("/v1/overrides") and response.status_code < 300:
        assert headers.get("Origin") is None  # a browser never drives an admin route
