"""`xp loadgen` against the real broker: what is on the wire is exactly what its JSON report says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas import Exposure, MetricEvent, RecordCodec
from schemas.codec import RecordError
from tests.fixtures.kafka import read_topics_to_end
from tests.payloads import DEMO_PAYLOAD
from xpcore.config import KafkaSettings
from xpcore.kafka import EVENTS, EXPOSURES

pytestmark = pytest.mark.integration


EVENT_NAMES = {"pageview", "purchase"}


def run_loadgen(settings: KafkaSettings, *args: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "XP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": settings.topic_prefix,
        "XP_MAX_RECORD_BYTES": str(settings.max_record_bytes),
    }
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "loadgen", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "━" not in result.stderr  # no progress bar with --format json
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def consume_all(settings: KafkaSettings, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every message of the exposures and events topics once they hold ``expected``: read to their end
    offsets, so an extra message shows in the count (not a quiet second taken as proof of none)."""
    return read_topics_to_end(settings, [EXPOSURES, EVENTS], at_least=expected, timeout=timeout)


def test_wire_totals_equal_the_report(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    features = tmp_path / "payload.json"
    features.write_text(json.dumps(DEMO_PAYLOAD))
    report = run_loadgen(
        kafka_settings,
        "--features",
        str(features),
        "--users",
        "2000",
        "--invalid-fraction",
        "0.02",
        "--duplicate-fraction",
        "0.05",
        "--late-fraction",
        "0.05",
        "--seed",
        "3",
    )
    total = report["exposures"] + report["events"] + report["invalid"] + report["duplicates"]
    assert report["exposures"] > 0 and report["events"] > 0 and report["invalid"] > 0
    assert report["duplicates"] > 0 and report["late"] > 0
    assert report["delivery_failures"] == 0 and report["records"] == total
    messages = consume_all(kafka_settings, total)
    assert len(messages) == total

    # Classify what arrived the way the stream must: codec, registry checks, then deduplication.
    known = {0, 1, 2}
    codecs: dict[str, RecordCodec[Any]] = {
        kafka_settings.topic(EXPOSURES): RecordCodec(
            Exposure, max_record_bytes=kafka_settings.max_record_bytes
        ),
        kafka_settings.topic(EVENTS): RecordCodec(
            MetricEvent, max_record_bytes=kafka_settings.max_record_bytes
        ),
    }
    ids: dict[str, set[str]] = {"exposures": set(), "events": set()}
    invalid = duplicates = 0
    per_variation: dict[str, int] = {}
    partition_of_unit: dict[tuple[str, str], int] = {}
    for message in messages:
        try:
            record: Any = codecs[message.topic()].decode(message.value())
        except RecordError:
            invalid += 1
            continue
        if isinstance(record, Exposure):
            ok = record.experiment_key == "checkout-button-color" and record.variation_id in known
            kind, record_id = "exposures", record.exposure_id
        else:
            ok = record.event_name in EVENT_NAMES
            kind, record_id = "events", record.event_id
        if not ok:
            invalid += 1
            continue
        assert message.key() == record.unit_id.encode()
        partition_of_unit.setdefault((kind, record.unit_id), message.partition())
        if record_id in ids["exposures"] or record_id in ids["events"]:
            duplicates += 1
            continue
        ids[kind].add(record_id)
        if isinstance(record, Exposure):
            per_variation[record.variation_key] = per_variation.get(record.variation_key, 0) + 1
    assert len(ids["exposures"]) == report["exposures"]
    assert len(ids["events"]) == report["events"]
    assert invalid == report["invalid"]
    assert duplicates == report["duplicates"]
    assert per_variation == report["per_experiment"]["checkout-button-color"]
    # Exposures and events of a unit land on the same partition number (co-partitioned, murmur2).
    for (kind, unit), partition in partition_of_unit.items():
        if kind == "events" and ("exposures", unit) in partition_of_unit:
            assert partition_of_unit[("exposures", unit)] == partition


def test_table_format_shows_progress_on_stderr(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    features = tmp_path / "payload.json"
    features.write_text(json.dumps(DEMO_PAYLOAD))
    env = {
        **os.environ,
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "loadgen", "--features", str(features), "--users", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "loadgen" in result.stderr and "300/300 records" in result.stderr  # 50 exposures + 250 events
    assert "checkout-button-color" in result.stdout


def test_unreachable_broker_fails_with_one_line(tmp_path: Path) -> None:
    features = tmp_path / "payload.json"
    features.write_text(json.dumps(DEMO_PAYLOAD))
    env = {**os.environ, "XP_KAFKA_BOOTSTRAP": "127.0.0.1:9", "XP_TOPIC_PREFIX": "nowhere."}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xpstream.cli",
            "loadgen",
            "--features",
            str(features),
            "--users",
            "10",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
