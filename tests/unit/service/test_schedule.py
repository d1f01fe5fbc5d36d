"""Schedule boundaries: an experiment starts and stops at its start/stop times (a fake clock),
without any registry change, in the registry source and through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from assignment.authoring import parse_registry_document
from assignment.registry import RegistrySnapshot
from assignment.service.app import build_app
from assignment.service.sources import RegistryPayloadSource
from tests.unit.service.conftest import make_service
from tests.unit.service.test_reload import FakeFollower

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STOP = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
UNITS = [{"id": f"u{i}"} for i in range(40)]


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _source(clock: FakeClock) -> tuple[RegistryPayloadSource, RegistrySnapshot]:
    document = {
        "experiments": [
            {
                "key": "checkout",
                "status": "running",
                "start": START.isoformat(),
                "stop": STOP.isoformat(),
                "variations": [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}],
            }
        ]
    }
    snapshot = parse_registry_document(document, "x.yaml").snapshot()
    follower = FakeFollower(snapshot)  # type: ignore[arg-type]
    source = RegistryPayloadSource(follower=follower, clock=clock)
    source.start()
    return source, snapshot


def _feature(source: RegistryPayloadSource) -> str:
    (feature_key,) = source.current().compiled.feature_keys
    return feature_key


def _in_experiment(source: RegistryPayloadSource) -> list[bool]:
    state = source.current()
    key = _feature(source)
    return [state.compiled.evaluate(key, unit).in_experiment for unit in UNITS]


def test_experiment_starts_and_stops_on_time_without_a_registry_change() -> None:
    clock = FakeClock(START - timedelta(seconds=1))
    source, snapshot = _source(clock)
    assert snapshot.next_boundary(START) == STOP and snapshot.next_boundary(STOP) is None
    assert not any(_in_experiment(source))
    first = source.current()
    assert first.valid_until == START
    clock.now = START - timedelta(microseconds=1)
    assert source.current() is first  # nothing to do before the boundary
    clock.now = START
    assert all(_in_experiment(source))
    running = source.current()
    assert running.version == first.version + 1 and running.valid_until == STOP
    assert running.snapshot is snapshot  # same registry snapshot, recompiled for the new moment
    clock.now = STOP + timedelta(hours=1)
    assert not any(_in_experiment(source))
    assert source.current().valid_until is None


def test_http_answers_follow_the_schedule() -> None:
    clock = FakeClock(START - timedelta(minutes=5))
    source, _ = _source(clock)
    client = TestClient(build_app(make_service(source=source, clock=clock)))
    key = _feature(source)

    def assigned() -> Any:
        body = client.post("/v1/assign", json={"attributes": {"id": "u1"}, "features": [key]}).json()
        return body["features"][key]

    assert assigned()["in_experiment"] is False
    clock.now = START + timedelta(seconds=1)
    during = assigned()
    assert during["in_experiment"] is True and during["experiment_key"] == "checkout"
    clock.now = STOP
    assert assigned()["in_experiment"] is False
