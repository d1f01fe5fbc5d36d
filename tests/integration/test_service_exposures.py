"""Exposures from the assignment service arrive on Kafka, and survive a broker outage.

- with the session broker (``kafka_settings``): every in-experiment assignment of the HTTP API lands
  once on ``xp.exposures``, keyed by unit id; collected events land on ``xp.events``;
- with a broker of its own (started with ``xpstream.stack.start_kafka`` on free ports in a temp
  XP_HOME, so the shared one is never touched): the broker is stopped while requests are served,
  exposures spool to disk, the broker restarts, the spool replays, and every exposure arrives exactly
  once by id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from assignment import compile_payload
from assignment.service.app import Service, build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import KafkaSink
from assignment.service.sources import StaticPayloadSource
from schemas import Exposure, RecordCodec
from tests.fixtures import kafka as kafka_fixtures
from tests.fixtures.kafka import read_topics_to_end
from tests.fixtures.waiting import wait_until
from tests.unit.service.conftest import PAYLOAD
from xpcore.config import KafkaSettings, ServiceSettings, StackSettings
from xpcore.kafka.topics import EVENTS, EXPOSURES

pytestmark = pytest.mark.integration

ENGINE = compile_payload(PAYLOAD)
CODEC = RecordCodec(Exposure)


def _units(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": f"u{i}", "country": "US", "device_id": f"d{i}"} for i in range(start, stop)]


def _expected(units: list[dict[str, Any]]) -> set[tuple[str, str, int | None]]:
    return {
        (r.experiment_key or "", str(r.hash_value), r.variation_id)
        for unit in units
        for r in ENGINE.evaluate_all(unit).values()
        if r.in_experiment
    }


def _service_settings(kafka: KafkaSettings, home: Path, **extra: Any) -> ServiceSettings:
    return ServiceSettings(
        home=home,
        kafka_bootstrap=kafka.kafka_bootstrap,
        topic_prefix=kafka.topic_prefix,
        spool_replay_interval=0.2,
        **extra,
    )


def _service(settings: ServiceSettings) -> Service:
    return Service(source=StaticPayloadSource(PAYLOAD), sink=KafkaSink(settings), keys=KeyRing())


def _consume(
    settings: KafkaSettings, topic: str, count: int, timeout: float = 30.0
) -> list[tuple[bytes, bytes]]:
    """Every record on the topic once it holds at least ``count``: read to its end offsets, so an
    extra record shows in the count (not a quiet poll taken as proof that nothing else arrived)."""
    messages = read_topics_to_end(settings, [topic], at_least=count, timeout=timeout)
    return [(message.key(), message.value()) for message in messages]


def test_exposures_and_events_arrive_on_kafka(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    settings = _service_settings(kafka_settings, tmp_path)
    service = _service(settings)
    units = _units(0, 60)
    with TestClient(build_app(service)) as client:
        for unit in units[:30]:
            assert client.post("/v1/assign", json={"attributes": unit}).status_code == 200
        client.post("/v1/assign/batch", json={"units": units})  # the first 30 again: deduplicated
        event = {
            "event_id": "ev-1",
            "unit_id": "u1",
            "event_name": "purchase",
            "value": 3.0,
            "occurred_at": "2026-11-25T10:00:00Z",
        }
        assert client.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
    expected = _expected(units)
    records = _consume(kafka_settings, EXPOSURES, len(expected))
    exposures = [CODEC.decode(value) for _, value in records]
    assert sorted((e.experiment_key, e.unit_id, e.variation_id) for e in exposures) == sorted(expected)
    assert all(key.decode() == e.unit_id for (key, _), e in zip(records, exposures, strict=True))
    assert all(e.source == "service" for e in exposures)
    (event_record,) = _consume(kafka_settings, EVENTS, 1)
    assert event_record[0] == b"u1"


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackSettings]:
    with kafka_fixtures.own_broker(
        tmp_path / "xp-home", monkeypatch, topic_partitions=2, kafka_stop_timeout=15.0
    ) as stack:
        yield stack


def test_broker_outage_spools_and_replays_exactly_once(own_broker: StackSettings, tmp_path: Path) -> None:
    from xpstream.stack import start_kafka, stop_kafka

    settings = _service_settings(own_broker, tmp_path / "service-home", exposure_delivery_timeout=2.0)
    service = _service(settings)
    sink = service.sink
    assert isinstance(sink, KafkaSink)
    before, during, after = _units(0, 40), _units(40, 140), _units(140, 180)
    with TestClient(build_app(service)) as client:

        def serve(units: list[dict[str, Any]]) -> None:
            for unit in units:
                began = time.perf_counter()
                assert client.post("/v1/assign", json={"attributes": unit}).status_code == 200
                assert time.perf_counter() - began < 1.0  # never blocked by Kafka

        serve(before)
        wait_until(
            lambda: sink.counts["delivered"] == len(_expected(before)), timeout=20, message="first deliveries"
        )
        stop_kafka(own_broker)
        serve(during[:50])
        wait_until(lambda: sink.stats()["spooling"], timeout=20, message="the sink to notice the outage")
        serve(during[50:])
        assert sink.spool.pending_bytes > 0
        start_kafka(own_broker)  # same XP_HOME and ports: the same cluster comes back
        wait_until(lambda: not sink.stats()["spooling"], timeout=60, message="the spool to drain")
        serve(after)
        stats = sink.stats()
    assert stats["spooled"] > 0 and stats["replayed"] > 0
    expected = _expected(before + during + after)
    records = _consume(own_broker, EXPOSURES, len(expected))
    ids = [CODEC.decode(value).exposure_id for _, value in records]
    assert len(ids) == len(set(ids)), "an exposure arrived twice"
    got = {(e.experiment_key, e.unit_id, e.variation_id) for e in (CODEC.decode(v) for _, v in records)}
    assert got == expected, f"missing {len(expected - got)}, unexpected {len(got - expected)}"
    assert sum(p.stat().st_size for p in settings.spool_path.glob("service-*.jsonl")) == 0
