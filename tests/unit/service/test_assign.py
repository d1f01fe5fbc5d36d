"""POST /v1/assign and /v1/assign/batch agree with the engine; overrides are applied and marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from assignment import compile_payload
from assignment.registry import RegistrySnapshot
from assignment.service.app import build_app
from schemas import Override
from tests.unit.service.conftest import PAYLOAD, US_UNITS, make_service

ENGINE = compile_payload(PAYLOAD)
FIELDS = ("value", "source", "in_experiment", "variation_id", "hash_used", "experiment_key", "bucket")


def _expected(key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    result = ENGINE.evaluate(key, attributes).to_dict()
    return {f: result[f] for f in FIELDS}


def test_assign_all_features_agrees_with_engine(client: TestClient) -> None:
    for unit in [*US_UNITS[:50], {"id": "x", "email": "a@example.com", "country": "US"}, {"country": "FR"}]:
        response = client.post("/v1/assign", json={"attributes": unit})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["payload_version"] == 1
        assert set(body["features"]) == {"checkout", "banner", "pricing"}
        for key, got in body["features"].items():
            assert {f: got[f] for f in FIELDS} == _expected(key, unit)
            assert got["overridden"] is False


def test_assign_named_features_and_unknown_feature(client: TestClient) -> None:
    body = client.post("/v1/assign", json={"attributes": {"id": "u1"}, "features": ["banner", "nope"]}).json()
    assert list(body["features"]) == ["banner", "nope"]
    assert body["features"]["nope"]["source"] == "unknownFeature"


def test_batch_agrees_with_engine_in_order(client: TestClient) -> None:
    units = [*US_UNITS, {"id": "solo"}]
    response = client.post("/v1/assign/batch", json={"units": units, "features": ["checkout", "pricing"]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(units)
    for unit, result in zip(units, results, strict=True):
        for key in ("checkout", "pricing"):
            assert {f: result[key][f] for f in FIELDS} == _expected(key, unit)


def test_invalid_bodies_are_422_with_detail(client: TestClient) -> None:
    for body in (b"not json", b'{"attributes": 3}', b'{"attributes": {}, "surprise": 1}'):
        response = client.post("/v1/assign", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert response.json()["error"] == "invalid request body"
        assert response.json()["detail"]


def test_batch_limit_is_413() -> None:
    service = make_service(max_batch_units=3)
    with TestClient(build_app(service)) as client:
        response = client.post("/v1/assign/batch", json={"units": [{"id": str(i)} for i in range(4)]})
    assert response.status_code == 413


def _in_experiment_unit() -> tuple[dict[str, Any], int]:
    for unit in US_UNITS:
        result = ENGINE.evaluate("checkout", unit)
        if result.in_experiment:
            assert result.variation_id is not None
            return unit, result.variation_id
    raise AssertionError("no unit in the experiment")


def test_override_forces_and_marks_and_expires() -> None:
    unit, natural = _in_experiment_unit()
    forced = 1 - natural
    now = datetime.now(UTC)
    override = Override(
        experiment_key="checkout-exp",
        unit_id=unit["id"],
        variation_id=forced,
        expires_at=now + timedelta(hours=1),
    )
    expired = Override(
        experiment_key="pricing-exp",
        unit_id=unit["device_id"],
        variation_id=2,
        expires_at=now - timedelta(hours=1),
    )
    snapshot = RegistrySnapshot(
        overrides={("checkout-exp", unit["id"]): override, ("pricing-exp", unit["device_id"]): expired}
    )
    service = make_service(snapshot=snapshot)
    with TestClient(build_app(service)) as client:
        body = client.post("/v1/assign", json={"attributes": unit}).json()["features"]
        batch = client.post("/v1/assign/batch", json={"units": [unit, *US_UNITS]}).json()["results"]
    assert body["checkout"]["variation_id"] == forced
    assert body["checkout"]["value"] == ["control", "one-page"][forced]
    assert body["checkout"]["overridden"] is True and body["checkout"]["hash_used"] is False
    assert body["pricing"]["overridden"] is False  # expired override is ignored
    assert body["pricing"] == {**_expected_full("pricing", unit), "overridden": False}
    assert batch[0]["checkout"]["overridden"] is True and batch[0]["checkout"]["variation_id"] == forced
    assert sum(r["checkout"]["overridden"] for r in batch) == 2  # the unit appears twice in the batch


def _expected_full(key: str, unit: dict[str, Any]) -> dict[str, Any]:
    return ENGINE.evaluate(key, unit).to_dict()


def test_override_on_other_hash_attribute_is_not_applied() -> None:
    unit, natural = _in_experiment_unit()
    # an override keyed by the unit's device id does not apply to checkout-exp, hashed on `id`
    override = Override(experiment_key="checkout-exp", unit_id=unit["device_id"], variation_id=1 - natural)
    service = make_service(
        snapshot=RegistrySnapshot(overrides={("checkout-exp", unit["device_id"]): override})
    )
    with TestClient(build_app(service)) as client:
        body = client.post("/v1/assign", json={"attributes": unit}).json()["features"]
    assert body["checkout"]["variation_id"] == natural
    assert body["checkout"]["overridden"] is False


def test_body_over_the_limit_is_413() -> None:
    service = make_service(max_body_bytes=2048)
    with TestClient(build_app(service)) as client:
        big = {"attributes": {"id": "u1", "blob": "x" * 5000}}
        assert client.post("/v1/assign", json=big).status_code == 413
        assert client.post("/v1/assign", json={"attributes": {"id": "u1"}}).status_code == 200
