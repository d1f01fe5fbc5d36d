"""The demo and the producers' keys, end to end on a real broker.

Runs `python -m xpstream.demo` (what `make demo` runs: registry → loadgen → stream → reconciled counts) on
its own stack, so CI proves the demo; and checks that exposures are keyed by unit id (co-partitioning).
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

import pytest

from schemas import Exposure, RecordCodec
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
    # Issue #18: reproducible (fixed seed), no false alarm, no empty metric, CUPED visible, a guide.
    assert "seed 42" in result.stdout
    assert "sample ratio mismatch" not in result.stdout
    counts = dict(
        (name, int(n)) for n, name in re.findall(r"(\d+) (\w+)", _line(result.stdout, "events by name:"))
    )
    assert set(counts) == {"add_to_cart", "pageview", "purchase", "refund"} and min(counts.values()) > 0
    means = metric_means(result.stdout)
    for metric in ("conversion", "revenue", "add_to_cart", "average_order_value", "refund_rate", "pageviews"):
        assert metric in means, metric
    empty = sorted(metric for metric, values in means.items() if not any(values))
    assert not empty, f"metrics with only zero means: {empty}"
    narrowed = re.search(r"pageviews\s+interval width .* with CUPED \((\d+)% narrower\)", result.stdout)
    assert narrowed is not None and int(narrowed.group(1)) > 0, result.stdout[-3000:]
    assert "What the numbers mean" in result.stdout and "Open next" in result.stdout


def _line(text: str, marker: str) -> str:
    return next(line for line in text.splitlines() if marker in line)


def metric_means(text: str) -> dict[str, list[float]]:
    """The ``mean`` column of every results table the demo printed, by metric (all experiments)."""
    means: dict[str, list[float]] = {}
    current = None
    for line in text.splitlines():
        title = re.match(r"^(\w+) \((?:binomial|mean|ratio), (?:primary|secondary|guardrail)\)", line)
        if title:
            current = title.group(1)
            means.setdefault(current, [])
        elif current and "│" in line:
            cells = [cell.strip() for cell in line.split("│")]
            means[current].append(float(cells[2]))  # variation │ units │ mean │ …
        elif current and "┃" not in line and "━" not in line:
            current = None
    return means
