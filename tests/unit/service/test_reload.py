"""Hot reload: the registry source recompiles when the follower's snapshot changes; no stale reads."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.sources import RegistryPayloadSource, StaticPayloadSource
from schemas import Override
from tests.unit.service.conftest import PAYLOAD, make_service
from xpcore.errors import ValidationError


class FakeSnapshot:
    def __init__(
        self, payload: dict[str, Any], overrides: Mapping[tuple[str, str], Override] | None = None
    ) -> None:
        self._payload = payload
        self.overrides = dict(overrides or {})

    def payload(self) -> dict[str, Any]:
        return self._payload

    def override_for(self, experiment_key: str, unit_id: str, at: datetime) -> Override | None:
        return self.overrides.get((experiment_key, unit_id))


class FakeFollower:
    def __init__(self, snapshot: FakeSnapshot) -> None:
        self.snapshot = snapshot
        self.on_change: Callable[..., None] | None = None
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def change(self, snapshot: FakeSnapshot, *, notify: bool = True) -> None:
        self.snapshot = snapshot  # swapped atomically, as RegistryFollower does
        if notify and self.on_change is not None:
            self.on_change(snapshot)


def _with_banner(value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(PAYLOAD)
    payload["features"]["banner"] = {"defaultValue": value}
    return payload


def test_registry_source_swaps_on_change_and_never_serves_stale() -> None:
    follower = FakeFollower(FakeSnapshot(_with_banner("v1")))
    source = RegistryPayloadSource(follower=follower)
    service = make_service(source=source)
    with TestClient(build_app(service)) as client:
        assert follower.started

        def banner() -> tuple[Any, int]:
            body = client.post("/v1/assign", json={"attributes": {"id": "u1"}, "features": ["banner"]}).json()
            return body["features"]["banner"]["value"], body["payload_version"]

        assert banner() == ("v1", 1)
        follower.change(FakeSnapshot(_with_banner("v2")))  # hook recompiles eagerly
        assert banner() == ("v2", 2)
        follower.change(FakeSnapshot(_with_banner("v3")), notify=False)  # no hook: first read recompiles
        assert banner() == ("v3", 3)
        assert client.get("/api/features/k").json()["features"]["banner"] == {"defaultValue": "v3"}
        first = source.current()
        assert source.current() is first  # unchanged snapshot: same compiled state, no recompile
    assert follower.stopped


def test_a_bad_change_keeps_the_last_good_payload() -> None:
    follower = FakeFollower(FakeSnapshot(_with_banner("good")))
    source = RegistryPayloadSource(follower=follower)
    source.start()
    bad = copy.deepcopy(PAYLOAD)
    bad["features"]["checkout"]["rules"][1]["variations"] = "not a list"
    follower.change(FakeSnapshot(bad))
    state = source.current()
    assert state.version == 1 and state.payload["features"]["banner"] == {"defaultValue": "good"}
    assert source.reload_errors == 1
    assert source.current() is state  # not retried per request


def test_overrides_follow_the_registry() -> None:
    follower = FakeFollower(FakeSnapshot(PAYLOAD))
    service = make_service(source=RegistryPayloadSource(follower=follower))
    unit = {"id": "u3", "country": "US", "device_id": "d3"}
    with TestClient(build_app(service)) as client:
        before = client.post("/v1/assign", json={"attributes": unit, "features": ["pricing"]}).json()
        natural = before["features"]["pricing"]["variation_id"]
        forced = (natural + 1) % 3
        override = Override(experiment_key="pricing-exp", unit_id="d3", variation_id=forced)
        follower.change(FakeSnapshot(PAYLOAD, {("pricing-exp", "d3"): override}))
        after = client.post("/v1/assign", json={"attributes": unit, "features": ["pricing"]}).json()
    assert after["features"]["pricing"]["variation_id"] == forced
    assert after["features"]["pricing"]["overridden"] is True


def test_static_source_from_file(tmp_path: Any) -> None:
    path = tmp_path / "payload.json"
    path.write_text('{"features": {"f": {"defaultValue": 1}}}')
    assert StaticPayloadSource.from_file(path).current().compiled.feature_keys == ["f"]
    path.write_text("{nope")
    with pytest.raises(ValidationError, match=r"payload\.json"):
        StaticPayloadSource.from_file(path)


def test_registry_not_read_in_time_is_one_transient_error() -> None:
    from xpcore.errors import TransientError

    follower = FakeFollower(FakeSnapshot(PAYLOAD))
    follower.snapshot = None  # type: ignore[assignment]
    source = RegistryPayloadSource(follower=follower, start_timeout=0.1)
    with pytest.raises(TransientError, match="not read within"):
        source.start()
