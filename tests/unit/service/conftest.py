"""Shared payload and app builders for the service unit tests (no Kafka: a MemorySink)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment.service.app import Service, build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from assignment.service.sources import StaticPayloadSource

PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout": {
            "defaultValue": "control",
            "rules": [
                {"id": "qa", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": "qa"},
                {
                    "key": "checkout-exp",
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "seed": "checkout-exp",
                    "condition": {"country": {"$in": ["US", "CA"]}},
                    "coverage": 0.8,
                    "variations": ["control", "one-page"],
                    "weights": [0.5, 0.5],
                    "meta": [{"key": "control"}, {"key": "one-page"}],
                },
            ],
        },
        "banner": {"defaultValue": False, "rules": [{"force": True, "coverage": 0.5, "hashAttribute": "id"}]},
        "pricing": {
            "defaultValue": 10,
            "rules": [
                {
                    "key": "pricing-exp",
                    "hashAttribute": "device_id",
                    "variations": [10, 12, 15],
                    "meta": [{"key": "low"}, {"key": "mid"}, {"key": "high"}],
                }
            ],
        },
    },
    "savedGroups": {},
}

US_UNITS = [{"id": f"u{i}", "country": "US", "device_id": f"d{i}"} for i in range(200)]


def make_service(payload: dict[str, Any] | None = None, **kwargs: Any) -> Service:
    kwargs.setdefault("keys", KeyRing())
    snapshot = kwargs.pop("snapshot", None)
    return Service(
        source=kwargs.pop("source", None) or StaticPayloadSource(payload or PAYLOAD, snapshot=snapshot),
        sink=kwargs.pop("sink", None) or MemorySink(),
        **kwargs,
    )


@pytest.fixture
def service() -> Service:
    return make_service()


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(build_app(service)) as test_client:
        yield test_client
