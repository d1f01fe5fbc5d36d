"""OFREP, GrowthBook remote evaluation and the event stream, in process (a MemorySink): the values are
the engine's (the same path as /v1/assign), exposures are recorded exactly as /v1/assign records
them, and hostile requests get the protocol's error, never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from assignment.service.sources import ServingState
from assignment.service.streams import ChangeFeed, change_events, event_stream
from tests.unit.service.conftest import PAYLOAD, US_UNITS, make_service
from xpcore.kafka.topics import EXPOSURES

KEYS = KeyRing.from_secrets("ck", "ops:ak", named=True)


def _client(**kwargs: Any) -> tuple[TestClient, MemorySink]:
    sink = MemorySink()
    service = make_service(keys=kwargs.pop("keys", KEYS), sink=sink, **kwargs)
    return TestClient(build_app(service)), sink


def _exposure_values(sink: MemorySink) -> list[dict[str, Any]]:
    out = []
    for topic, _, value in sink.records:
        assert topic == EXPOSURES
        record = json.loads(value)
        out.append({k: record[k] for k in ("unit_id", "experiment_key", "variation_id", "exposure_id")})
    return sorted(out, key=lambda r: (r["unit_id"], r["experiment_key"]))


# OFREP ------------------------------------------------------------------------------------------


def test_ofrep_flag_is_the_engine_value_and_logs_the_same_exposures_as_assign() -> None:
    ofrep, ofrep_sink = _client()
    assign, assign_sink = _client()
    for unit in US_UNITS[:60]:
        context = {"targetingKey": unit["id"], "country": "US"}
        got = ofrep.post(
            "/ofrep/v1/evaluate/flags/checkout", json={"context": context}, headers={"X-API-Key": "ck"}
        )
        assert got.status_code == 200, got.text
        expected = assign.post(
            "/v1/assign",
            json={"attributes": {"id": unit["id"], "country": "US"}, "features": ["checkout"]},
            headers={"X-XP-Key": "ck"},
        ).json()["features"]["checkout"]
        body = got.json()
        assert body["key"] == "checkout" and body["value"] == expected["value"]
        if expected["in_experiment"]:
            assert body["reason"] == "SPLIT" and body["variant"] == expected["variation_key"]
            assert body["metadata"]["experiment_key"] == "checkout-exp"
            assert body["metadata"]["variation_id"] == expected["variation_id"]
        else:
            assert body["reason"] == "DEFAULT" and body["variant"] == "default"
    assert _exposure_values(ofrep_sink) == _exposure_values(assign_sink)
    assert ofrep_sink.records  # some units are in the experiment


def test_ofrep_targeting_key_fills_each_rules_own_hash_attribute() -> None:
    client, _ = _client()
    body = client.post(
        "/ofrep/v1/evaluate/flags/pricing",
        json={"context": {"targetingKey": "d7"}},
        headers={"X-API-Key": "ck"},
    ).json()
    engine = make_service().source.current().compiled.evaluate("pricing", {"device_id": "d7"})
    assert body["value"] == engine.value and body["metadata"]["hash_attribute"] == "device_id"
    # an attribute the context names itself wins over the targeting key
    explicit = client.post(
        "/ofrep/v1/evaluate/flags/pricing",
        json={"context": {"targetingKey": "d7", "device_id": "d8"}},
        headers={"X-API-Key": "ck"},
    ).json()
    assert (
        explicit["value"]
        == make_service().source.current().compiled.evaluate("pricing", {"device_id": "d8"}).value
    )


def test_ofrep_reasons_static_and_targeting_match() -> None:
    payload = {
        "features": {
            **PAYLOAD["features"],
            "static": {"defaultValue": 3},
            "nothing": {"defaultValue": None},
        }
    }
    client, _ = _client(payload=payload)
    post = lambda key, ctx: client.post(  # noqa: E731
        f"/ofrep/v1/evaluate/flags/{key}", json={"context": ctx}, headers={"X-API-Key": "ck"}
    ).json()
    assert post("static", {})["reason"] == "STATIC"
    qa = post("checkout", {"targetingKey": "u1", "email": "a@example.com"})
    assert (qa["value"], qa["reason"]) == ("qa", "TARGETING_MATCH")
    assert "value" not in post("nothing", {})  # null: the provider returns the caller's default


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "PARSE_ERROR"),
        (b"[1, 2]", 400, "PARSE_ERROR"),
        (b'"context"', 400, "PARSE_ERROR"),
        (b'{"context": [1]}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 7}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": ""}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"country": "US"}}', 400, "TARGETING_KEY_MISSING"),
        (b"[" * 5000 + b"]" * 5000, 400, "PARSE_ERROR"),
    ],
)
def test_ofrep_hostile_bodies_get_ofrep_errors(body: bytes, status: int, code: str) -> None:
    client, sink = _client()
    response = client.post(
        "/ofrep/v1/evaluate/flags/checkout",
        content=body,
        headers={"X-API-Key": "ck", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["errorCode"] == code and response.json()["key"] == "checkout"
    assert not sink.records


def test_ofrep_unknown_flag_keys_content_type_and_size() -> None:
    client, _ = _client(max_body_bytes=2048)
    ok = {"X-API-Key": "ck"}
    missing = client.post("/ofrep/v1/evaluate/flags/nope", json={}, headers=ok)
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert client.post("/ofrep/v1/evaluate/flags/checkout", json={}).status_code == 401
    assert client.post("/ofrep/v1/evaluate/flags", json={}, headers={"X-API-Key": "wrong"}).status_code == 401
    for header in ({"Authorization": "Bearer ck"}, {"X-XP-Key": "ck"}, {"X-API-Key": "ak"}):
        answer = client.post(
            "/ofrep/v1/evaluate/flags/banner", json={"context": {"targetingKey": "u1"}}, headers=header
        )
        assert answer.status_code == 200
    text = client.post(
        "/ofrep/v1/evaluate/flags/checkout", content=b"{}", headers={**ok, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    huge = client.post(
        "/ofrep/v1/evaluate/flags/checkout",
        content=b'{"context": {"x": "' + b"a" * 10_000 + b'"}}',
        headers={**ok, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413


def test_ofrep_bulk_etag_304_and_event_stream() -> None:
    client, sink = _client()
    request = {"context": {"targetingKey": "u5", "country": "US", "device_id": "d5"}}
    first = client.post("/ofrep/v1/evaluate/flags", json=request, headers={"X-API-Key": "ck"})
    assert first.status_code == 200
    body = first.json()
    compiled = make_service().source.current().compiled
    values = {flag["key"]: flag.get("value") for flag in body["flags"]}
    attributes = {"id": "u5", "country": "US", "device_id": "d5"}
    assert values == {key: compiled.evaluate(key, attributes).value for key in compiled.features}
    assert body["eventStreams"] == [{"type": "sse", "url": "http://testserver/sub/ck"}]
    again = client.post(
        "/ofrep/v1/evaluate/flags",
        json=request,
        headers={"X-API-Key": "ck", "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304 and again.headers["etag"] == first.headers["etag"]
    other = client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "u6"}},
        headers={"X-API-Key": "ck", "If-None-Match": first.headers["etag"]},
    )
    assert other.status_code == 200  # another context, other values
    without_key = client.post(
        "/ofrep/v1/evaluate/flags", json={"context": {}}, headers={"X-API-Key": "ck"}
    ).json()
    codes = {flag["key"]: flag.get("errorCode") for flag in without_key["flags"]}
    assert codes["checkout"] == "TARGETING_KEY_MISSING" and codes["banner"] == "TARGETING_KEY_MISSING"
    admin = client.post("/ofrep/v1/evaluate/flags", json=request, headers={"X-API-Key": "ak"}).json()
    assert "eventStreams" not in admin  # an admin key is never put in a URL
    assert sink.records


def test_ofrep_cors_for_browsers() -> None:
    client, _ = _client()
    preflight = client.options(
        "/ofrep/v1/evaluate/flags",
        headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "If-None-Match" in preflight.headers["access-control-allow-headers"]
    answer = client.post(
        "/ofrep/v1/evaluate/flags", json={}, headers={"Origin": "http://app.example", "X-API-Key": "ck"}
    )
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "ETag" in answer.headers["access-control-expose-headers"]


# GrowthBook remote evaluation -------------------------------------------------------------------


def test_remote_eval_is_the_engine_per_unit_and_exposes_like_assign() -> None:
    remote, remote_sink = _client()
    assign, assign_sink = _client()
    compiled = make_service().source.current().compiled
    for unit in US_UNITS[:40]:
        response = remote.post("/api/eval/ck", json={"attributes": unit, "forcedVariations": {}, "url": ""})
        assert response.status_code == 200 and response.headers["x-sse-support"] == "enabled"
        features = response.json()["features"]
        for key in compiled.features:
            result = compiled.evaluate(key, unit)
            assert features[key]["defaultValue"] == result.value
            if result.in_experiment:
                (rule,) = features[key]["rules"]
                assert rule["force"] == result.value
                assert rule["tracks"][0]["result"]["variationId"] == result.variation_id
            else:
                assert "rules" not in features[key]
        assign.post("/v1/assign", json={"attributes": unit}, headers={"X-XP-Key": "ck"})
    assert _exposure_values(remote_sink) == _exposure_values(assign_sink)
    text = json.dumps(remote.post("/api/eval/ck", json={"attributes": US_UNITS[0]}).json())
    assert "$regex" not in text and "condition" not in text  # targeting never leaves the service


def test_remote_eval_qa_overrides_are_applied_but_never_exposures() -> None:
    client, sink = _client()
    unit = US_UNITS[3]
    forced = client.post(
        "/api/eval/ck",
        json={
            "attributes": unit,
            "forcedVariations": {"pricing-exp": 1},
            "forcedFeatures": [["banner", "forced-banner"]],
        },
    ).json()["features"]
    assert forced["pricing"]["defaultValue"] == 12
    assert forced["banner"] == {"defaultValue": "forced-banner"}
    exposed = {json.loads(value)["experiment_key"] for _, _, value in sink.records}
    assert "pricing-exp" not in exposed  # a variation the SDK forces itself is not an exposure


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 422),
        (b"[]", 422),
        (b'{"attributes": [1]}', 422),
        (b'{"forcedVariations": {"e": -1}}', 422),
        (b'{"forcedVariations": {"e": true}}', 422),
        (b'{"forcedFeatures": [["a"]]}', 422),
        (b'{"forcedFeatures": 3}', 422),
        (b'{"url": 5}', 422),
        (b'{"attributes": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),
        (b'{"attributes": {}, "forcedFeatures": {"banner": 1}}', 200),
    ],
)
def test_remote_eval_hostile_bodies(body: bytes, status: int) -> None:
    client, _ = _client()
    response = client.post("/api/eval/ck", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text


def test_remote_eval_and_stream_keys() -> None:
    client, _ = _client()
    assert client.post("/api/eval/wrong", json={}).status_code == 401
    assert client.post("/api/eval/ak", json={}).status_code == 403  # an admin key in a URL
    assert client.get("/sub/wrong").status_code == 401
    assert client.get("/sub/ak").status_code == 403
    assert (
        client.post("/api/eval/ck", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    assert client.get("/api/features/ck").headers["x-sse-support"] == "enabled"
    full, _ = _client(max_streams=0)
    refused = full.get("/sub/ck")
    assert refused.status_code == 503 and "XP_SERVICE_MAX_STREAMS" in refused.text


# the event stream -------------------------------------------------------------------------------


def _state(version: int) -> ServingState:
    payload = {"features": {"f": {"defaultValue": version}}}
    return ServingState.build(version, payload)


def test_change_events_carry_the_growthbook_and_ofrep_events() -> None:
    state = _state(4)
    signal = change_events(state, inline_payload=False).decode()
    assert "event: features-updated\n" in signal and "id: 4\n" in signal
    assert '"type":"refetchEvaluation"' in signal
    inline = change_events(state, inline_payload=True).decode()
    (features_line,) = [line for line in inline.splitlines() if line.startswith('data: {"status"')]
    assert json.loads(features_line[len("data: ") :]) == state.sdk_payload()


def test_event_stream_sends_each_new_version_once_and_heartbeats() -> None:
    async def scenario() -> list[bytes]:
        feed = ChangeFeed(max_streams=2)
        states = {"now": _state(1)}
        stream = event_stream(feed, lambda: states["now"], inline_payload=False, heartbeat=0.05)
        chunks = [await anext(stream)]  # retry hint
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        assert feed.open_streams == 1
        states["now"] = _state(2)
        feed.notify()
        chunks.append(await waiting)
        chunks.append(await anext(stream))  # idle: a keep-alive comment
        await stream.aclose()
        assert feed.open_streams == 0
        return chunks

    retry, change, idle = asyncio.run(scenario())
    assert retry.startswith(b"retry: ")
    assert b"id: 2\n" in change and b"features-updated" in change
    assert idle == b": keep-alive\n\n"


def test_event_stream_replays_a_missed_change_after_reconnect() -> None:
    async def first_chunk() -> bytes:
        feed = ChangeFeed(max_streams=1)
        stream = event_stream(feed, lambda: _state(5), inline_payload=True, heartbeat=1, last_version=3)
        await anext(stream)
        chunk = await anext(stream)
        await stream.aclose()
        return chunk

    assert b"event: features\n" in asyncio.run(first_chunk())


def test_registry_source_tells_listeners_about_each_new_version_once() -> None:
    from assignment.service.sources import RegistryPayloadSource
    from tests.unit.service.test_reload import FakeFollower, FakeSnapshot

    follower = FakeFollower(FakeSnapshot({"features": {"f": {"defaultValue": 1}}}))
    source = RegistryPayloadSource(follower=follower)
    source.start()
    seen: list[int] = []
    source.add_listener(lambda state: seen.append(state.version))
    source.add_listener(lambda state: 1 / 0)  # a failing listener breaks neither serving nor the others
    source.current()
    assert seen == []  # nothing new
    follower.change(FakeSnapshot({"features": {"f": {"defaultValue": 2}}}))
    assert seen == [2] and source.current().version == 2
    follower.change(FakeSnapshot({"features": {"f": {"defaultValue": 3, "rules": "not a list"}}}))
    assert seen == [2] and source.current().version == 2  # did not compile: version kept, no event


def test_a_change_reaches_an_open_stream_over_http() -> None:
    import httpx

    from assignment.service.sources import RegistryPayloadSource
    from tests.fixtures.http import serve_in_thread
    from tests.fixtures.waiting import wait_until
    from tests.unit.service.test_reload import FakeFollower, FakeSnapshot

    follower = FakeFollower(FakeSnapshot({"features": {"f": {"defaultValue": 1}}}))
    service = make_service(
        keys=KEYS, source=RegistryPayloadSource(follower=follower), stream_heartbeat_seconds=0.2
    )
    with serve_in_thread(build_app(service)) as url:
        headers = {"Origin": "http://app.example"}
        with httpx.stream("GET", f"{url}/sub/ck?payload=inline", headers=headers, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["access-control-allow-origin"] == "*"
            lines = response.iter_lines()
            assert next(lines).startswith("retry: ")
            wait_until(lambda: service.feed.open_streams == 1, timeout=10, message="the stream to open")
            follower.change(FakeSnapshot({"features": {"f": {"defaultValue": 2}}}))
            received = []
            for line in lines:
                received.append(line)
                if line.startswith('data: {"status"'):
                    break
            assert "event: features" in received and "id: 2" in received
            payload = json.loads(received[-1][len("data: ") :])
            assert payload["features"] == {"f": {"defaultValue": 2}}
        wait_until(lambda: service.feed.open_streams == 0, timeout=10, message="the stream to close")
