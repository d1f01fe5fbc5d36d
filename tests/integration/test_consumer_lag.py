"""The lag adapter (xpcore/kafka/group_offsets.py) against a real broker: what the dashboard reads of a
group from outside (committed offsets vs high watermarks) and what the runner asks its own consumer."""

from __future__ import annotations

import uuid

import pytest

from dashboards.lag import read_consumer_lag
from tests.fixtures.kafka import read_topics_to_end
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings
from xpcore.kafka import EVENTS, EXPOSURES
from xpcore.kafka.clients import make_consumer, make_producer
from xpcore.kafka.group_offsets import all_partitions, consumer_lag, end_offsets, read_group_lag

pytestmark = pytest.mark.integration


def _produce(settings: KafkaSettings, topic: str, count: int) -> None:
    producer = make_producer(settings)
    for i in range(count):
        producer.produce(settings.topic(topic), key=f"unit-{i}".encode(), value=b"{}")
    assert producer.flush(30) == 0


def _commit_all(settings: KafkaSettings, group: str, topic: str) -> None:
    """Commit the end offsets of every partition of ``topic`` for ``group`` (as a worker that read it)."""
    consumer = make_consumer(settings, group, role="worker")
    try:
        partitions = all_partitions(consumer, [settings.topic(topic)])
        ends = []
        for tp in partitions:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            tp.offset = high
            ends.append(tp)
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def test_group_lag_is_the_records_past_the_committed_offsets(kafka_settings: KafkaSettings) -> None:
    _produce(kafka_settings, EXPOSURES, 30)
    _produce(kafka_settings, EVENTS, 20)
    read_topics_to_end(kafka_settings, [EXPOSURES, EVENTS], at_least=50)
    group = f"xp-lag-{uuid.uuid4().hex[:8]}"
    topics = {EXPOSURES: kafka_settings.topic(EXPOSURES), EVENTS: kafka_settings.topic(EVENTS)}

    # Nothing committed: everything retained is lag.
    assert read_group_lag(kafka_settings, group, topics, timeout=10) == {EXPOSURES: 30, EVENTS: 20}
    _commit_all(kafka_settings, group, EXPOSURES)
    assert read_group_lag(kafka_settings, group, topics, timeout=10) == {EXPOSURES: 0, EVENTS: 20}
    # The dashboard's reading, through the same adapter with the dashboard's principal.
    reading = read_consumer_lag(kafka_settings, group, timeout=10)
    assert reading.known and reading.total == 20 and reading.by_topic == {EXPOSURES: 0, EVENTS: 20}
    _produce(kafka_settings, EXPOSURES, 4)
    after = wait_until(
        lambda: read_group_lag(kafka_settings, group, topics, timeout=10)[EXPOSURES] or None,
        timeout=30,
        message="the new exposures counted as lag",
    )
    assert after == 4


def test_a_missing_topic_is_left_out(kafka_settings: KafkaSettings) -> None:
    topics = {"nowhere": f"{kafka_settings.topic(EXPOSURES)}-missing-{uuid.uuid4().hex[:6]}"}
    assert read_group_lag(kafka_settings, "xp-lag-missing", topics, timeout=10) == {}


def test_an_unreachable_broker_is_a_reason_not_an_error(kafka_settings: KafkaSettings) -> None:
    unreachable = kafka_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    reading = read_consumer_lag(unreachable, "xp-lag-nowhere", timeout=2)
    assert not reading.known and reading.reason.startswith("Kafka unreachable")


def test_a_consumer_reads_its_own_lag_from_its_position(kafka_settings: KafkaSettings) -> None:
    _produce(kafka_settings, EVENTS, 12)
    read_topics_to_end(kafka_settings, [EVENTS], at_least=12)
    consumer = make_consumer(kafka_settings, f"xp-lag-{uuid.uuid4().hex[:8]}", role="worker")
    try:
        partitions = all_partitions(consumer, [kafka_settings.topic(EVENTS)])
        assert partitions  # the topic's partitions, from the broker's metadata
        assert consumer_lag(consumer, partitions) == 12  # nothing read, nothing committed
        consumer.assign(partitions)
        read: list[object] = []

        def drained() -> bool:
            read.extend(m for m in consumer.consume(num_messages=100, timeout=0.5) if m.error() is None)
            return consumer_lag(consumer, partitions) == 0

        wait_until(drained, timeout=30, interval=0, message="the consumer's position at the end offsets")
        assert len(read) == 12
    finally:
        consumer.close()


def test_end_offsets_are_the_watermarks_in_one_request(kafka_settings: KafkaSettings) -> None:
    """The batched offsets the drained check reads (one ``offsets_for_times``) are the watermarks that
    ``get_watermark_offsets`` reads partition by partition, low and high, empty partitions included."""
    _produce(kafka_settings, EVENTS, 9)
    read_topics_to_end(kafka_settings, [EVENTS], at_least=9)
    consumer = make_consumer(kafka_settings, f"xp-lag-{uuid.uuid4().hex[:8]}", role="worker")
    try:
        partitions = all_partitions(consumer, [kafka_settings.topic(EVENTS), kafka_settings.topic(EXPOSURES)])
        keys = [(tp.topic, tp.partition) for tp in partitions]
        one_by_one = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            for tp in partitions
        }
        assert end_offsets(consumer, keys, -1, 10) == {key: high for key, (_, high) in one_by_one.items()}
        assert end_offsets(consumer, keys, -2, 10) == {key: low for key, (low, _) in one_by_one.items()}
        assert sum(high for _, high in one_by_one.values()) >= 9
    finally:
        consumer.close()
