"""POST /v1/events (per-record errors, valid records produced, rejects dead-lettered), the GrowthBook
SDK payload endpoint, /healthz, /metrics and /openapi.json."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from assignment.service.app import Service, build_app
from assignment.service.exposures import MemorySink
from schemas import DeadLetter, Exposure, MetricEvent, RecordCodec
from tests.unit.service.conftest import PAYLOAD, make_service

EXPOSURE = {
    "exposure_id": "e1",
    "unit_id": "u1",
    "hash_attribute": "id",
    "experiment_key": "checkout-exp",
    "variation_id": 1,
    "variation_key": "one-page",
    "source": "sdk",
    "exposed_at": "2026-11-25T10:00:00+01:00",
}
EVENT = {
    "event_id": "ev1",
    "unit_id": "u1",
    "event_name": "purchase",
    "value": 9.5,
    "occurred_at": "2026-11-25T09:00:00Z",
}


def test_events_per_record_errors(client: TestClient, service: Service) -> None:
    body = {
        "exposures": [
            EXPOSURE,
            {**EXPOSURE, "unit_id": None},
            {**EXPOSURE, "exposed_at": "2026-11-25T10:00:00"},
        ],
        "events": [EVENT, {**EVENT, "event_name": 5}, "just a string"],
    }
    response = client.post("/v1/events", json=body)
    assert response.status_code == 202
    result = response.json()
    assert result["accepted"] == 2 and result["rejected"] == 4
    assert [(e["kind"], e["index"], e["reason"]) for e in result["errors"]] == [
        ("exposure", 1, "missing_field"),
        ("exposure", 2, "bad_timestamp"),
        ("metric_event", 1, "schema_violation"),
        ("metric_event", 2, "schema_violation"),
    ]
    assert all(e["detail"] for e in result["errors"])
    sink = service.sink
    assert isinstance(sink, MemorySink)
    by_topic: dict[str, list[tuple[str | None, bytes]]] = {}
    for topic, key, value in sink.records:
        by_topic.setdefault(topic, []).append((key, value))
    ((key, value),) = by_topic["xp.exposures"]
    exposure = RecordCodec(Exposure).decode(value)
    assert key == "u1" and exposure.exposure_id == "e1"
    assert exposure.exposed_at.isoformat() == "2026-11-25T09:00:00+00:00"  # normalised to UTC
    ((key, value),) = by_topic["xp.events"]
    assert key == "u1" and RecordCodec(MetricEvent).decode(value).value == 9.5
    dead = [RecordCodec(DeadLetter).decode(v) for _, v in by_topic["xp.dead-letters"]]
    assert [d.reason for d in dead] == [
        "missing_field",
        "bad_timestamp",
        "schema_violation",
        "schema_violation",
    ]
    assert all(d.source_topic == "http" and d.original for d in dead)


def test_events_envelope_errors(client: TestClient) -> None:
    assert (
        client.post("/v1/events", content=b"[1,2]", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert client.post("/v1/events", json={"exposures": 1}).status_code == 422


def test_events_limit() -> None:
    with TestClient(build_app(make_service(max_events=2))) as client:
        assert client.post("/v1/events", json={"events": [EVENT] * 3}).status_code == 413


def test_sdk_payload_shape(client: TestClient) -> None:
    response = client.get("/api/features/sdk-abc")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200
    assert body["features"] == PAYLOAD["features"]
    assert body["savedGroups"] == {}
    assert body["dateUpdated"].endswith("Z")
    etag = response.headers["etag"]
    assert client.get("/api/features/sdk-abc", headers={"If-None-Match": etag}).status_code == 304


def test_sdk_payload_feeds_the_engine_identically(client: TestClient) -> None:
    from assignment import compile_payload

    served = compile_payload(client.get("/api/features/k").json())
    original = compile_payload(PAYLOAD)
    for i in range(100):
        unit = {"id": f"u{i}", "country": "US", "device_id": f"d{i}"}
        assert served.evaluate_all(unit) == original.evaluate_all(unit)


def test_health_metrics_openapi(client: TestClient) -> None:
    client.post("/v1/assign", json={"attributes": {"id": "u1", "country": "US"}})
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["payload_version"] == 1 and health["features"] == 3
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'xp_service_requests_total{endpoint="assign",status="200"} 1.0' in metrics.text
    assert "xp_service_request_seconds_bucket" in metrics.text
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/assign", "/v1/assign/batch", "/v1/events", "/api/features/{client_key}", "/healthz"} <= set(
        document["paths"]
    )
    assert "AssignRequest" in document["components"]["schemas"]
    json.dumps(document)


def test_cors_preflight_for_browser_sdks(client: TestClient) -> None:
    response = client.options(
        "/api/features/k",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "X-XP-Key" in response.headers["access-control-allow-headers"]
    simple = client.get("/api/features/k", headers={"Origin": "https://shop.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in client.get("/api/features/k").headers


POISON_VALUES = {
    "NaN": "value_not_finite",
    "Infinity": "value_not_finite",
    "-Infinity": "value_not_finite",
    "1e999": "value_not_finite",
    "1.7e308": "value_out_of_range",
    "-5e15": "value_out_of_range",
}


def test_collector_dead_letters_poison_values_like_the_kafka_path(
    client: TestClient, service: Service
) -> None:
    # Raw JSON text: NaN/Infinity/1e999 are what a client can send; the collector once turned them into null.
    events = [
        json.dumps({**EVENT, "event_id": f"p{i}"}).replace("9.5", v) for i, v in enumerate(POISON_VALUES)
    ]
    body = '{"events": [' + ", ".join([json.dumps(EVENT), *events]) + "]}"
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202
    result = response.json()
    assert result["accepted"] == 1 and result["rejected"] == len(POISON_VALUES)
    assert [e["reason"] for e in result["errors"]] == list(POISON_VALUES.values())
    sink = service.sink
    assert isinstance(sink, MemorySink)
    loaded = [RecordCodec(MetricEvent).decode(v) for t, _, v in sink.records if t == "xp.events"]
    assert [event.value for event in loaded] == [9.5]  # no poison value loaded as null
    dead = [RecordCodec(DeadLetter).decode(v) for t, _, v in sink.records if t == "xp.dead-letters"]
    assert [d.reason for d in dead] == list(POISON_VALUES.values())
    # The same verdict as the stream's codec on the bytes the dead letter kept.
    kafka_codec = RecordCodec(MetricEvent)
    for letter in dead:
        try:
            kafka_codec.decode(letter.original)
        except Exception as error:
            assert getattr(error, "reason", None) == letter.reason
        else:
            raise AssertionError(f"{letter.original!r} decoded on the Kafka path")


def test_collector_value_bound_is_the_service_setting() -> None:
    service = make_service(max_abs_metric_value=100.0)
    with TestClient(build_app(service, manage_lifecycle=False)) as client:
        body = {"events": [{**EVENT, "value": 100.0}, {**EVENT, "event_id": "big", "value": 100.5}]}
        result = client.post("/v1/events", json=body).json()
    assert result["accepted"] == 1
    assert [e["reason"] for e in result["errors"]] == ["value_out_of_range"]


def test_collector_refuses_json_nested_ten_thousand_deep_as_a_bad_request(
    client: TestClient, service: Service
) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    body = '{"events": [' + json.dumps(EVENT) + ', {"event_id": "deep", "x": ' + deep + "}]}"
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422  # the whole request refused with a clear error, never a 500
    assert response.json()["error"] == "invalid request body"
    sink = service.sink
    assert isinstance(sink, MemorySink) and sink.records == []  # nothing half-accepted
