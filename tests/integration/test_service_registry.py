"""The service follows the real registry topic: a published change is served without a restart, and
an override posted to the admin endpoint goes through the registry and comes back applied and marked."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment.service.app import Service, build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from assignment.service.sources import RegistryPayloadSource
from schemas import (
    ExperimentDefinition,
    ExperimentStatus,
    FeatureDefinition,
    FeatureStatus,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    registry_key,
)
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings

pytestmark = pytest.mark.integration

EXPERIMENT = {
    "key": "exp-x",
    "variations": ["a", "b"],
    "weights": [0.5, 0.5],
    "hashAttribute": "id",
    "meta": [{"key": "a"}, {"key": "b"}],
}


def _record(
    payload: Any, kind: RegistryKind, change: RegistryChange = RegistryChange.UPDATED
) -> RegistryRecord:
    return RegistryRecord(
        record_id=str(uuid.uuid4()),
        kind=kind,
        key=registry_key(payload),
        change=change,
        changed_by="test",
        changed_at=datetime.now(UTC),
        payload=payload,
    )


def _feature(version: int, default: str) -> RegistryRecord:
    definition = {"defaultValue": default, "rules": [dict(EXPERIMENT)]}
    return _record(
        FeatureDefinition(key="f", version=version, status=FeatureStatus.ACTIVE, definition=definition),
        RegistryKind.FEATURE,
    )


def test_registry_changes_and_overrides_are_served_without_restart(kafka_settings: KafkaSettings) -> None:
    from assignment.registry_topic import publish_changes

    experiment = ExperimentDefinition(
        key="exp-x", version=1, status=ExperimentStatus.RUNNING, name="X", definition=EXPERIMENT
    )
    publish_changes(kafka_settings, [_record(experiment, RegistryKind.EXPERIMENT), _feature(1, "off")])
    service = Service(
        source=RegistryPayloadSource(kafka_settings, start_timeout=30),
        sink=MemorySink(),
        keys=KeyRing(client_keys=("ck",), admin_keys=("ak",)),
        publisher=functools.partial(publish_changes, kafka_settings),
    )
    admin = {"Authorization": "Bearer ak"}
    with TestClient(build_app(service)) as client:

        def assign(unit: str) -> tuple[int, dict[str, Any]]:
            body = client.post("/v1/assign", json={"attributes": {"id": unit}}, headers=admin).json()
            return body["payload_version"], body["features"]["f"]

        version, first = assign("u1")
        assert first["in_experiment"] and first["experiment_key"] == "exp-x"
        assert client.get("/api/features/ck").json()["features"]["f"]["defaultValue"] == "off"

        publish_changes(kafka_settings, [_feature(2, "on")])
        wait_until(
            lambda: client.get("/api/features/ck").json()["features"]["f"]["defaultValue"] == "on",
            timeout=20,
            message="the new feature default to be served",
        )
        assert assign("u1")[0] > version

        forced = 1 - first["variation_id"]
        response = client.post(
            "/v1/overrides",
            json={"experiment_key": "exp-x", "unit_id": "u1", "variation_id": forced, "reason": "QA"},
            headers=admin,
        )
        assert response.status_code == 202, response.text
        wait_until(lambda: assign("u1")[1]["overridden"], timeout=20, message="the override to be served")
        overridden = assign("u1")[1]
        assert overridden["variation_id"] == forced and overridden["value"] == ["a", "b"][forced]

        assert client.delete("/v1/overrides/exp-x/u1", headers=admin).status_code == 202
        wait_until(lambda: not assign("u1")[1]["overridden"], timeout=20, message="the override to go")
        assert assign("u1")[1]["variation_id"] == first["variation_id"]
