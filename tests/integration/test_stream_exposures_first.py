"""Exposures first on a backlog (decision 0107), against the real broker and chDB.

1. librdkafka's pause and resume, as the worker uses them: every record of a paused partition is read
   after its resume, once, in order; nothing of it arrives while it is paused.
2. The worker over a backlog with a cap of held events far below the events: every attribution row, no
   held event released early. Sent events first, this backlog is handed over events first by librdkafka
   here: with ``XP_STREAM_EXPOSURES_FIRST_LAG=0`` (off) the same run attributed 7,960 of the 15,000 rows
   and released 7,040 events unattributed (2026-12-06); with it, 5 pauses and every row.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import Exposure, MetricEvent, RecordCodec
from tests.integration.test_stream_worker import produce, read_tables, run_worker, worker_env
from tests.unit.pipeline.helpers import event, exposure
from xpcore.config import KafkaSettings
from xpcore.kafka import EVENTS, EXPOSURES

pytestmark = pytest.mark.integration

REGISTRY = {"experiments": {"exp-a": {"variations": [{"id": 0, "key": "c"}, {"id": 1, "key": "t"}]}}}


def backlog(units: int, events_per_unit: int) -> tuple[list[tuple[str, bytes, bytes]], int]:
    """Every event first, then every exposure (sent in that order); the attribution rows expected."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    exposures: list[tuple[str, bytes, bytes]] = []
    events: list[tuple[str, bytes, bytes]] = []
    exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    for u in range(units):
        unit = f"unit-{u}"
        record = exposure(f"x-{u}", unit, "exp-a", u % 2, base)
        exposures.append((EXPOSURES, unit.encode(), exposure_codec.encode(record)))
        for j in range(events_per_unit):
            occurred = event(f"e-{u}-{j}", unit, "purchase", 1.0, base + timedelta(seconds=1 + j))
            events.append((EVENTS, unit.encode(), event_codec.encode(occurred)))
    return events + exposures, units * events_per_unit


def test_a_paused_partition_is_read_after_its_resume_once_and_in_order(kafka_settings: KafkaSettings) -> None:
    from confluent_kafka import TopicPartition

    from xpcore.kafka.group_consumer import consume_batch, make_group_consumer

    sends, _ = backlog(units=600, events_per_unit=10)
    produce(kafka_settings, sends)
    events_topic, exposures_topic = kafka_settings.topic(EVENTS), kafka_settings.topic(EXPOSURES)
    consumer = make_group_consumer(kafka_settings, "xp-test-pause", role="worker", session_timeout_seconds=10)
    consumer.subscribe([exposures_topic, events_topic])
    seen: dict[tuple[str, int], list[int]] = {}
    paused: list[TopicPartition] = []
    while_paused: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, seen.values())) < len(sends) and time.monotonic() < deadline:
            messages = consume_batch(consumer, 500, 0.5, 1 << 30)
            for message in messages:
                if paused and message.topic() == events_topic:
                    while_paused.append(f"{message.partition()}/{message.offset()}")
                seen.setdefault((message.topic(), message.partition()), []).append(message.offset())
            if messages and not paused and not any(k[0] == exposures_topic for k in seen):
                paused = [tp for tp in consumer.assignment() if tp.topic == events_topic]
                consumer.pause(paused)  # what the worker does while the exposures lag
            elif paused and not messages:
                consumer.resume(paused)  # the exposures are read: the events come next
                paused = []
    finally:
        consumer.close()
    assert sum(map(len, seen.values())) == len(sends)
    for (topic, partition), offsets in seen.items():
        assert offsets == list(range(len(offsets))), f"{topic}/{partition}: skipped, repeated or out of order"
    # Nothing of a paused partition arrived while it was paused (its prefetched records were dropped).
    assert not while_paused, while_paused[:5]


def test_a_backlog_loses_no_attribution_past_the_held_cap(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    sends, expected_rows = backlog(units=1_500, events_per_unit=10)
    produce(kafka_settings, sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(
        kafka_settings,
        home,
        registry_file,
        XP_STREAM_BATCH_SIZE="500",
        XP_STREAM_MAX_HELD_EVENTS="1000",  # 15,000 events: a tenth can be held at once
        XP_STREAM_EXPOSURES_FIRST_LAG="50",
    )

    report = run_worker(env)

    assert report["consumed"] == len(sends)
    assert report["held_released_early"] == 0, report
    assert report["attributed"] == expected_rows
    attributed = read_tables(home)["attributed"]
    assert len(attributed) == len(set(attributed)) == expected_rows
