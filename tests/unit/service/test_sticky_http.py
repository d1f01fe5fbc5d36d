"""Sticky bucketing over HTTP: the client keeps its documents and sends them back (no server state)."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_sticky_documents_round_trip_through_the_client(client: TestClient) -> None:
    unit = {"id": "u3", "country": "US", "device_id": "d3"}
    plain = client.post("/v1/assign", json={"attributes": unit}).json()
    assert "sticky_bucket_docs" not in plain
    first = client.post("/v1/assign", json={"attributes": unit, "sticky_bucket_docs": []}).json()
    docs = first["sticky_bucket_docs"]
    pricing = first["features"]["pricing"]
    assert pricing["in_experiment"] and pricing["sticky_bucket_used"] is False
    assert {
        "attributeName": "device_id",
        "attributeValue": "d3",
        "assignments": {"pricing-exp__0": pricing["variation_key"]},
    } in docs
    again = client.post("/v1/assign", json={"attributes": unit, "sticky_bucket_docs": docs}).json()
    assert again["features"]["pricing"]["sticky_bucket_used"] is True
    assert again["features"]["pricing"]["value"] == pricing["value"]
    assert sorted(map(str, again["sticky_bucket_docs"])) == sorted(map(str, docs))


def test_a_sent_document_decides_the_variation(client: TestClient) -> None:
    unit = {"id": "u3", "country": "US", "device_id": "d3"}
    hashed = client.post("/v1/assign", json={"attributes": unit}).json()["features"]["pricing"]
    other = next(key for key in ("low", "mid", "high") if key != hashed["variation_key"])
    doc = {"attributeName": "device_id", "attributeValue": "d3", "assignments": {"pricing-exp__0": other}}
    body = client.post("/v1/assign", json={"attributes": unit, "sticky_bucket_docs": [doc]}).json()
    assert body["features"]["pricing"]["variation_key"] == other
    assert body["features"]["pricing"]["sticky_bucket_used"] is True
    assert body["sticky_bucket_docs"] == [doc]


def test_malformed_sticky_documents_are_ignored_not_fatal(client: TestClient) -> None:
    unit = {"id": "u3", "country": "US", "device_id": "d3"}
    body = client.post(
        "/v1/assign", json={"attributes": unit, "sticky_bucket_docs": [{"attributeName": 3}]}
    ).json()
    assert body["features"]["pricing"]["sticky_bucket_used"] is False
    bad = client.post("/v1/assign", json={"attributes": unit, "sticky_bucket_docs": "x"})
    assert bad.status_code == 422
