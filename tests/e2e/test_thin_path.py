"""The foundation's thin real path: Kafka (confluent-kafka) → consumer → warehouse, read back exactly.

Also runs `python -m xpstream.demo` (what `make demo` runs: registry → loadgen → stream → reconciled
counts) on its own stack, so CI proves the demo.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipelines.thin_loader import load_topic_into_table
from schemas import DeadLetterReason, Exposure, RecordCodec
from tests.fixtures.kafka import free_ports
from tests.payloads import DEMO_PAYLOAD
from xpcore.config import KafkaSettings
from xpcore.kafka import EXPOSURES

pytestmark = pytest.mark.e2e


def build_demo_exposures(users: int, seed: int) -> list[Any]:
    """Exposures of ``users`` simulated units assigned by the real engine (deterministic for a seed)."""
    from assignment import CompiledPayload
    from schemas import Exposure, ExposureSource

    rng = random.Random(seed)
    payload = CompiledPayload(DEMO_PAYLOAD)
    units = [
        {"id": f"user-{seed}-{i}", "country": rng.choice(["US", "DE", "BR", "IN"])} for i in range(users)
    ]
    results = payload.evaluate_many("checkout-button", units)
    start = datetime.now(UTC) - timedelta(minutes=10)
    exposures = []
    for unit, result in zip(units, results, strict=True):
        if not result.in_experiment or result.variation_id is None:
            continue
        exposures.append(
            Exposure(
                exposure_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                unit_id=unit["id"],
                hash_attribute="id",
                experiment_key=result.experiment_key or "checkout-button-color",
                variation_id=result.variation_id,
                variation_key=result.variation_key or str(result.variation_id),
                feature_key="checkout-button",
                bucket=result.bucket,
                source=ExposureSource.LOADGEN,
                attributes={"country": unit["country"]},
                exposed_at=start + timedelta(milliseconds=rng.randrange(600_000)),
            )
        )
    return exposures


def produce_demo_exposures(settings: KafkaSettings, exposures: list[Any]) -> int:
    """Produce exposures keyed by unit id; returns how many the broker acknowledged."""
    from schemas import Exposure, RecordCodec
    from xpcore.kafka import EXPOSURES
    from xpcore.kafka.clients import make_producer

    codec = RecordCodec(Exposure, max_record_bytes=settings.max_record_bytes)
    producer = make_producer(settings)
    topic = settings.topic(EXPOSURES)
    acknowledged = 0
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal acknowledged
        if error is None:
            acknowledged += 1
        else:
            failures.append(str(error))

    for exposure in exposures:
        producer.produce(topic, key=exposure.unit_id, value=codec.encode(exposure), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    if failures:
        raise RuntimeError(f"{len(failures)} exposures were not acknowledged, first: {failures[0]}")
    return acknowledged


BAD_VALUES = [b"\xff\xfe not utf-8", b'{"exposure_id": "truncated', b"{}", b"null"]


def _exposure_rows(warehouse, columns: list[str]) -> list[dict]:
    """The contract columns of every stored exposure (not the ones the warehouse adds)."""
    table = warehouse.query_arrow(f"SELECT {', '.join(columns)} FROM xp.exposures ORDER BY exposure_id")
    return table.to_pylist()


def test_exposures_produced_to_kafka_are_loaded_exactly(kafka_settings, warehouse) -> None:
    from confluent_kafka import Producer

    from schemas.arrow import to_arrow

    exposures = build_demo_exposures(users=2000, seed=11)
    assert len(exposures) == 2000  # coverage 1.0: every simulated user is in the experiment
    acknowledged = produce_demo_exposures(kafka_settings, exposures)
    assert acknowledged == len(exposures)
    topic = kafka_settings.topic(EXPOSURES)
    bad_producer = Producer(kafka_settings.confluent_producer_config())
    for value in BAD_VALUES:
        bad_producer.produce(topic, key=b"bad-unit", value=value)
    bad_producer.flush(10)

    report = load_topic_into_table(
        kafka_settings,
        warehouse,
        topic=topic,
        table="xp.exposures",
        record_type=Exposure,
        group_id="thin-path-test",
        expected=len(exposures) + len(BAD_VALUES),
    )

    assert report.consumed == len(exposures) + len(BAD_VALUES)
    assert report.loaded == len(exposures)
    assert report.rejected == len(BAD_VALUES)
    # What was read back is exactly what was sent, field by field.
    sent = to_arrow(exposures, Exposure)
    expected = sorted(sent.to_pylist(), key=lambda row: row["exposure_id"])
    assert _exposure_rows(warehouse, sent.column_names) == expected
    # Every rejected record is a dead letter with a reason and its original bytes.
    dead = warehouse.query_arrow("SELECT reason, original, source_topic FROM xp.dead_letters")
    # chDB returns String as Arrow string; the original bytes need not be UTF-8 (docs/schemas.md).
    dead = dead.cast(dead.schema.set(1, dead.schema.field(1).with_type(pa.binary())))
    rows = dead.to_pylist()
    assert sorted(row["original"] for row in rows) == sorted(BAD_VALUES)
    assert {row["source_topic"] for row in rows} == {topic}
    assert {row["reason"] for row in rows} <= {reason.value for reason in DeadLetterReason}
    assert all(row["reason"] for row in rows)

    # A second run of the same consumer group finds nothing new: offsets were committed after the insert.
    again = load_topic_into_table(
        kafka_settings,
        warehouse,
        topic=topic,
        table="xp.exposures",
        record_type=Exposure,
        group_id="thin-path-test",
        idle_seconds=2.0,
    )
    assert again.consumed == 0
    assert warehouse.query_arrow("SELECT count() AS n FROM xp.exposures").column("n")[0].as_py() == 2000


def test_exposures_are_keyed_by_unit_for_co_partitioning(kafka_settings) -> None:
    from confluent_kafka import Consumer

    exposures = build_demo_exposures(users=200, seed=3)
    produce_demo_exposures(kafka_settings, exposures)
    consumer = Consumer(
        {**kafka_settings.confluent_config(), "group.id": "keys", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([kafka_settings.topic(EXPOSURES)])
    codec = RecordCodec(Exposure)
    seen: dict[str, int] = {}
    try:
        while len(seen) < len(exposures):
            message = consumer.poll(10)
            assert message is not None, "timed out waiting for exposures"
            record = codec.decode(message.value())
            assert message.key().decode() == record.unit_id
            seen[record.unit_id] = message.partition()
    finally:
        consumer.close()
    assert len(set(seen.values())) > 1  # keys spread over the partitions


def test_make_demo_runs_end_to_end(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    env = {
        **os.environ,
        "XP_HOME": str(tmp_path / "xp"),
        "XP_KAFKA_PORT": str(port),
        "XP_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    env.pop("XP_KAFKA_BOOTSTRAP", None)
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.demo", "--users", "4000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "every count reconciles" in result.stdout
    assert "MISMATCH" not in result.stdout
    assert "stopped the local stack" in result.stdout
    # The per-variation exposure counts printed by `xp sql` cover the three demo variations.
    checkout_rows = [
        line
        for line in result.stdout.splitlines()
        if line.lstrip().startswith("checkout-button ") and "│" in line
    ]
    assert len(checkout_rows) == 3
    # It ends with a results table for each demo experiment.
    for experiment in ("checkout-button", "pricing-page-annual-first", "search-ranking-v2"):
        assert f"$ xp results {experiment}" in result.stdout
    assert "conversion (binomial, primary)" in result.stdout
    # Then the batch jobs, the data-quality summary (clean demo traffic: no check fails), the dashboard URL.
    assert "$ xp jobs run quality" in result.stdout
    assert re.search(r"quality: \d+ checks, all passed", result.stdout), result.stdout[-3000:]
    assert "http://127.0.0.1:8200/" in result.stdout
