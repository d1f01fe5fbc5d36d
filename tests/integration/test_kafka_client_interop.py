"""Proof of the Kafka version choice (docs/decisions/0001-kafka-version.md): the broker serves both
Python clients of the project, and they agree with each other on every record and partition.

confluent-kafka (librdkafka) produces, aiokafka (what Faust runs on) consumes, and the other way round
(plus a minimal faust-streaming worker),
through the consumer-group protocol, with compression, keys, headers and the same murmur2 partitioning.
Compression is gzip: aiokafka 0.14 decodes lz4/zstd/snappy only with the optional ``cramjam`` package.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest

from xpcore.config import KafkaSettings
from xpcore.kafka.topics import EVENTS, EXPOSURES

pytestmark = pytest.mark.integration

Record = tuple[bytes, bytes, int]  # key, value, partition
COUNT = 400


def records_for(run: str) -> list[tuple[bytes, bytes]]:
    return [
        (
            f"unit-{i % 97}".encode(),
            json.dumps({"run": run, "seq": i, "unit_id": f"unit-{i % 97}", "text": "é✓" * (i % 5)}).encode(),
        )
        for i in range(COUNT)
    ]


def produce_confluent(
    settings: KafkaSettings, topic: str, records: Iterable[tuple[bytes, bytes]]
) -> list[Record]:
    from confluent_kafka import Producer

    delivered: list[Record] = []
    errors: list[object] = []

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            errors.append(error)
        else:
            delivered.append((message.key(), message.value(), message.partition()))  # type: ignore[attr-defined]

    producer = Producer(
        {**settings.confluent_producer_config(), "compression.type": "gzip", "linger.ms": 5, "acks": "all"}
    )
    for key, value in records:
        producer.produce(
            topic, value=value, key=key, headers=[("source", b"confluent")], on_delivery=on_delivery
        )
    assert producer.flush(30) == 0
    assert not errors
    return delivered


def consume_confluent(settings: KafkaSettings, topic: str, count: int) -> tuple[list[Record], list[bytes]]:
    """Every record of the topic, read up to each partition's end offset (taken once the producer has
    flushed): a record delivered twice is counted twice, not hidden behind a quiet wait."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[Record] = []
    sources: list[bytes] = []
    offsets: dict[int, int] = {}
    deadline = time.monotonic() + 60
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(settings.topic_partitions)
        }
        assert sum(ends.values()) >= count, f"the topic holds {sum(ends.values())} records, {count} sent"
        while time.monotonic() < deadline and any(offsets.get(p, -1) + 1 < end for p, end in ends.items()):
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                partition, offset = message.partition(), message.offset()
                assert offset > offsets.get(partition, -1), "offsets go forward within a partition"
                offsets[partition] = offset
                received.append((message.key(), message.value(), partition))
                sources.extend(value for name, value in message.headers() or [] if name == "source")
    finally:
        consumer.close()
    return received, sources


async def produce_aiokafka(
    settings: KafkaSettings, topic: str, records: Iterable[tuple[bytes, bytes]]
) -> list[Record]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **settings.aiokafka_config("loadgen"), compression_type="gzip", acks="all", linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            (key, value, await producer.send(topic, value=value, key=key, headers=[("source", b"aiokafka")]))
            for key, value in records
        ]
        return [(key, value, (await future).partition) for key, value, future in futures]
    finally:
        await producer.stop()


async def consume_aiokafka(
    settings: KafkaSettings, topic: str, count: int
) -> tuple[list[Record], list[bytes]]:
    """As consume_confluent: every record up to each partition's end offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        topic,
        **settings.aiokafka_config("worker"),
        group_id=f"xp-interop-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[Record] = []
    sources: list[bytes] = []
    offsets: dict[int, int] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = {tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()}
        assert sum(ends.values()) >= count, f"the topic holds {sum(ends.values())} records, {count} sent"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(offsets.get(p, -1) + 1 < end for p, end in ends.items()):
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for message in messages:
                    assert message.offset > offsets.get(tp.partition, -1)
                    offsets[tp.partition] = message.offset
                    assert message.key is not None and message.value is not None
                    received.append((message.key, message.value, tp.partition))
                    sources.extend(value for name, value in message.headers if name == "source")
    finally:
        await consumer.stop()
    return received, sources


def assert_same_records(sent: list[Record], received: list[Record]) -> None:
    assert len(received) == len(sent), "every record arrives exactly once"
    assert sorted(received) == sorted(sent)
    for partition in {p for _, _, p in sent}:
        order_sent = [v for _, v, p in sent if p == partition]
        order_received = [v for _, v, p in received if p == partition]
        assert order_received == order_sent, f"order within partition {partition}"


def test_confluent_produces_aiokafka_consumes(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(EXPOSURES)
    sent = produce_confluent(kafka_settings, topic, records_for("c2a"))
    assert len({p for _, _, p in sent}) == kafka_settings.topic_partitions, "keys spread over all partitions"

    received, sources = asyncio.run(consume_aiokafka(kafka_settings, topic, len(sent)))

    assert_same_records(sent, received)
    assert set(sources) == {b"confluent"} and len(sources) == COUNT


def test_aiokafka_produces_confluent_consumes(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(EVENTS)
    sent = asyncio.run(produce_aiokafka(kafka_settings, topic, records_for("a2c")))

    received, sources = consume_confluent(kafka_settings, topic, len(sent))

    assert_same_records(sent, received)
    assert set(sources) == {b"aiokafka"} and len(sources) == COUNT


def test_both_clients_put_a_key_on_the_same_partition(kafka_settings: KafkaSettings) -> None:
    """Exposures and events stay co-partitioned whichever client produced them."""
    keys = [(f"unit-{i}".encode(), b"{}") for i in range(64)]
    by_confluent = {
        key: p for key, _, p in produce_confluent(kafka_settings, kafka_settings.topic(EXPOSURES), keys)
    }
    by_aiokafka = {
        key: p
        for key, _, p in asyncio.run(produce_aiokafka(kafka_settings, kafka_settings.topic(EVENTS), keys))
    }
    assert by_confluent == by_aiokafka


FAUST_APP = """
import json, os
import faust

app = faust.App(
    os.environ["APP_ID"],
    broker="kafka://" + os.environ["BOOTSTRAP"],
    broker_credentials=faust.SASLCredentials(
        username=os.environ["SASL_USERNAME"],
        password=os.environ["SASL_PASSWORD"],
        mechanism=os.environ["SASL_MECHANISM"],
    ),
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
topic = app.topic(os.environ["TOPIC"], key_serializer="raw", value_serializer="raw")
seen = []


@app.agent(topic)
async def collect(stream):
    async for event in stream.events():
        seen.append([event.key.decode(), event.value.decode(), event.message.partition])
        if len(seen) >= int(os.environ["COUNT"]):
            with open(os.environ["OUT"], "w") as handle:
                json.dump(seen, handle)
            os._exit(0)


if __name__ == "__main__":
    app.main()
"""


def test_faust_agent_consumes_what_confluent_produced(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    """A minimal faust-streaming worker (aiokafka underneath) reads every record, on the same partition."""
    topic = kafka_settings.topic(EXPOSURES)
    sent = produce_confluent(kafka_settings, topic, records_for("faust")[:100])
    (tmp_path / "faust_app.py").write_text(FAUST_APP)
    out = tmp_path / "seen.json"
    admin = kafka_settings.aiokafka_config("admin")
    env = {
        **os.environ,
        "APP_ID": f"interop-{uuid.uuid4().hex[:8]}",
        "BOOTSTRAP": kafka_settings.kafka_bootstrap,
        # Faust (aiokafka) with SCRAM: the admin principal, as Faust also creates its own topics
        "SASL_USERNAME": admin["sasl_plain_username"],
        "SASL_PASSWORD": admin["sasl_plain_password"],
        "SASL_MECHANISM": admin["sasl_mechanism"],
        "TOPIC": topic,
        "COUNT": str(len(sent)),
        "OUT": str(out),
    }
    result = subprocess.run(
        [sys.executable, "faust_app.py", "worker", "-l", "error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    received = [
        (key.encode(), value.encode(), partition) for key, value, partition in json.loads(out.read_text())
    ]
    assert_same_records(sent, received)
