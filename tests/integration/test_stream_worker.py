"""The stream worker against the real broker and chDB: exact counts, attribution, counters, kill -9.

Records are produced with confluent-kafka directly; the worker runs as `python -m xpstream.cli stream run`
in a subprocess (chDB: one process owns the store, so the test opens it only while no worker runs).
Expected values are computed here from the generated data, independently of the pipeline.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec
from tests.fixtures.kafka import free_ports, read_topics_to_end
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.kafka import DEAD_LETTERS, EVENTS, EXPOSURES
from xpcore.warehouse import load_query, open_warehouse

pytestmark = pytest.mark.integration

WINDOW = timedelta(minutes=10)
REGISTRY = {
    "experiments": {
        "exp-a": {
            "variations": [
                {"id": 0, "key": "control", "name": "Control"},
                {"id": 1, "key": "t", "name": "Treat"},
            ]
        },
        "exp-b": {"variations": [{"id": i, "key": str(i), "name": f"B{i}"} for i in range(3)]},
    }
}
RECOUNT_EXPOSURES = """
SELECT experiment_key, variation_id, toStartOfMinute(exposed_at) AS minute,
       count() AS exposures, uniqExact(unit_id) AS units
FROM xp.exposures
GROUP BY experiment_key, variation_id, minute
ORDER BY experiment_key, variation_id, minute
"""
INVALID = [
    (EXPOSURES, b"\xff\xfe not utf-8"),
    (EXPOSURES, b'{"exposure_id": "trunc'),
    (EXPOSURES, b"null"),
    (EVENTS, b"{}"),
    (EVENTS, b"x" * 20_000),  # over XP_MAX_RECORD_BYTES=16384 below
]


@dataclass
class Traffic:
    """Generated records, what is sent, and the expected outcome."""

    sends: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """(logical topic, key, value) in send order."""
    exposures: list[Exposure] = field(default_factory=list)
    events: list[MetricEvent] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    invalid: int = 0


def build_traffic(units: int, seed: int) -> Traffic:
    rng = random.Random(seed)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    traffic = Traffic()
    early_events: list[tuple[str, bytes, bytes]] = []
    for u in range(units):
        unit = f"unit-{seed}-{u}"
        key = unit.encode()
        exposed = base + timedelta(seconds=rng.randrange(0, 600))
        for experiment, count in (("exp-a", 2), ("exp-b", 3)):
            if experiment == "exp-b" and u % 3 == 0:
                continue  # a third of the units never meet exp-b
            variations = [rng.randrange(count)]
            if u % 17 == 0:  # a unit seen in two variations
                variations.append((variations[0] + 1) % count)
            for i, variation in enumerate(variations):
                record = Exposure(
                    exposure_id=f"x-{unit}-{experiment}-{i}",
                    unit_id=unit,
                    hash_attribute="id",
                    experiment_key=experiment,
                    variation_id=variation,
                    variation_key=str(variation),
                    source=ExposureSource.LOADGEN,
                    exposed_at=exposed + timedelta(seconds=30 * i + (5 if experiment == "exp-b" else 0)),
                )
                traffic.exposures.append(record)
                traffic.sends.append((EXPOSURES, key, exposure_codec.encode(record)))
                if u % 11 == 0:  # a producer re-send: same record twice
                    traffic.sends.append((EXPOSURES, key, exposure_codec.encode(record)))
        for j in range(rng.randrange(0, 5)):
            name = rng.choice(["pageview", "purchase"])
            metric_event = MetricEvent(
                event_id=f"e-{unit}-{j}",
                unit_id=unit,
                event_name=name,
                value=round(rng.uniform(1, 100), 2) if name == "purchase" else None,
                occurred_at=exposed + timedelta(seconds=rng.randrange(-120, 1200)),
            )
            traffic.events.append(metric_event)
            send = (EVENTS, key, event_codec.encode(metric_event))
            # Some events are sent before their unit's exposures (out of order across topics).
            (early_events if u % 5 == 0 else traffic.sends).append(send)
            if u % 13 == 0:
                traffic.sends.append(send)
        if u % 29 == 0:  # too late: beyond XP_STREAM_MAX_LATENESS_SECONDS → dead letter
            late = MetricEvent(
                event_id=f"late-{unit}",
                unit_id=unit,
                event_name="purchase",
                value=1.0,
                occurred_at=base - timedelta(hours=3),
            )
            traffic.sends.append((EVENTS, key, event_codec.encode(late)))
            traffic.dead_reasons["timestamp_out_of_bounds"] = (
                traffic.dead_reasons.get("timestamp_out_of_bounds", 0) + 1
            )
        if u % 31 == 0:  # unknown experiment, unknown variation, unknown event name
            bad = [
                Exposure(
                    exposure_id=f"bad-exp-{unit}",
                    unit_id=unit,
                    hash_attribute="id",
                    experiment_key="exp-unknown",
                    variation_id=0,
                    variation_key="0",
                    source=ExposureSource.SDK,
                    exposed_at=exposed,
                ),
                Exposure(
                    exposure_id=f"bad-var-{unit}",
                    unit_id=unit,
                    hash_attribute="id",
                    experiment_key="exp-a",
                    variation_id=9,
                    variation_key="9",
                    source=ExposureSource.SDK,
                    exposed_at=exposed,
                ),
            ]
            for record in bad:
                traffic.sends.append((EXPOSURES, key, exposure_codec.encode(record)))
            name_event = MetricEvent(
                event_id=f"bad-name-{unit}", unit_id=unit, event_name="signup", occurred_at=exposed
            )
            traffic.sends.append((EVENTS, key, event_codec.encode(name_event)))
            for reason in ("unknown_experiment", "unknown_variation", "unknown_event_name"):
                traffic.dead_reasons[reason] = traffic.dead_reasons.get(reason, 0) + 1
    traffic.sends = early_events + traffic.sends
    for topic, value in INVALID:
        traffic.sends.append((topic, b"bad-key", value))
    traffic.invalid = sum(traffic.dead_reasons.values()) + len(INVALID)
    return traffic


def expected_attributions(traffic: Traffic) -> set[tuple[str, str, int]]:
    """(event_id, experiment, variation of the first exposure): the rule of pipelines/attribution.py."""
    first: dict[tuple[str, str], Exposure] = {}
    for exposure in traffic.exposures:
        key = (exposure.unit_id, exposure.experiment_key)
        if key not in first or exposure.exposed_at < first[key].exposed_at:
            first[key] = exposure
    by_unit: dict[str, list[Exposure]] = defaultdict(list)
    for exposure in first.values():
        by_unit[exposure.unit_id].append(exposure)
    pairs = set()
    for event in traffic.events:
        for exposure in by_unit[event.unit_id]:
            if exposure.exposed_at <= event.occurred_at <= exposure.exposed_at + WINDOW:
                pairs.add((event.event_id, exposure.experiment_key, exposure.variation_id))
    return pairs


def produce(settings: KafkaSettings, sends: list[tuple[str, bytes, bytes]]) -> None:
    from xpcore.kafka.clients import make_producer

    producer = make_producer(settings)
    for topic, key, value in sends:
        producer.produce(settings.topic(topic), key=key, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0


def worker_env(kafka: KafkaSettings, home: Path, registry_file: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka.topic_prefix,
        "XP_STREAM_REGISTRY_FILE": str(registry_file),
        "XP_STREAM_ATTRIBUTION_WINDOW_SECONDS": str(WINDOW.total_seconds()),
        "XP_STREAM_MAX_LATENESS_SECONDS": "7200",
        "XP_MAX_RECORD_BYTES": "16384",
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    env.update(extra)
    return env


def worker_command(runner: str = "kafka", *options: str) -> list[str]:
    """``xp stream run --runner RUNNER --format json`` plus ``options``, as a subprocess command."""
    return [
        sys.executable,
        "-m",
        "xpstream.cli",
        "stream",
        "run",
        "--runner",
        runner,
        "--format",
        "json",
        *options,
    ]


def run_worker(env: dict[str, str], until_idle: float = 3, runner: str = "kafka") -> dict[str, Any]:
    command = worker_command(runner, "--until-idle", str(until_idle))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def read_tables(home: Path) -> dict[str, Any]:
    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:

        def rows(sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
            return warehouse.query_arrow(sql, parameters).to_pylist()

        since = {"since": datetime(2000, 1, 1, tzinfo=UTC)}
        return {
            "exposure_ids": [r["exposure_id"] for r in rows("SELECT exposure_id FROM xp.exposures")],
            "event_ids": [r["event_id"] for r in rows("SELECT event_id FROM xp.events")],
            "names": rows("SELECT DISTINCT experiment_key, variation_id, variation_name FROM xp.exposures"),
            "dead": rows(
                "SELECT reason, detail, source_topic, source_partition, source_offset FROM xp.dead_letters"
            ),
            "attributed": [
                (r["event_id"], r["experiment_key"], r["variation_id"])
                for r in rows("SELECT event_id, experiment_key, variation_id FROM xp.attributed_events")
            ],
            "counters": rows(load_query("realtime_exposures"), since),
            "recount": rows(RECOUNT_EXPOSURES),
            "metric_stats": rows(load_query("realtime_metric_stats")),
        }
    finally:
        warehouse.close()


def expected_metric_stats(traffic: Traffic) -> dict[tuple[str, int, str], dict[str, float]]:
    """Sufficient statistics per experiment × variation × event over eligible units (one variation)."""
    variations: dict[tuple[str, str], set[int]] = defaultdict(set)
    for exposure in traffic.exposures:
        variations[(exposure.experiment_key, exposure.unit_id)].add(exposure.variation_id)
    events = {e.event_id: e for e in traffic.events}
    per_unit: dict[tuple[str, int, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for event_id, experiment, variation in expected_attributions(traffic):
        event = events[event_id]
        if len(variations[(experiment, event.unit_id)]) > 1:
            continue
        slot = per_unit[(experiment, variation, event.event_name, event.unit_id)]
        slot[0] += event.value or 0.0
        slot[1] += 1
    units: dict[tuple[str, int], int] = defaultdict(int)
    for (experiment, _unit), seen in variations.items():
        if len(seen) == 1:
            units[(experiment, next(iter(seen)))] += 1
    stats: dict[tuple[str, int, str], dict[str, float]] = {}
    for (experiment, variation, name, _unit), (v, c) in per_unit.items():
        s = stats.setdefault(
            (experiment, variation, name),
            {
                "units": units[(experiment, variation)],
                "units_with_events": 0,
                "sum_value": 0.0,
                "sum_value_sq": 0.0,
                "sum_count": 0.0,
                "sum_count_sq": 0.0,
                "sum_value_count": 0.0,
            },
        )
        s["units_with_events"] += 1
        s["sum_value"] += v
        s["sum_value_sq"] += v * v
        s["sum_count"] += c
        s["sum_count_sq"] += c * c
        s["sum_value_count"] += v * c
    return stats


def assert_exact(tables: dict[str, Any], traffic: Traffic) -> None:
    assert sorted(tables["exposure_ids"]) == sorted(e.exposure_id for e in traffic.exposures)
    assert sorted(tables["event_ids"]) == sorted(e.event_id for e in traffic.events)
    assert len(tables["dead"]) == traffic.invalid
    assert all(row["reason"] and row["detail"] for row in tables["dead"])
    reasons: dict[str, int] = defaultdict(int)
    for row in tables["dead"]:
        reasons[row["reason"]] += 1
    for reason, count in traffic.dead_reasons.items():
        assert reasons[reason] == count, (reason, dict(reasons))
    assert (
        len({(r["source_topic"], r["source_partition"], r["source_offset"]) for r in tables["dead"]})
        == traffic.invalid
    )
    assert sorted(tables["attributed"]) == sorted(expected_attributions(traffic))
    assert tables["counters"] == tables["recount"]
    got = {(r["experiment_key"], r["variation_id"], r["event_name"]): r for r in tables["metric_stats"]}
    want = expected_metric_stats(traffic)
    assert set(got) == set(want)
    for key, expected in want.items():
        for column, value in expected.items():
            assert got[key][column] == pytest.approx(value), (key, column)


def test_worker_loads_exact_counts_dead_letters_attribution_and_counters(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=400, seed=1)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(kafka_settings, home, registry_file)

    report = run_worker(env)

    assert report["consumed"] == len(traffic.sends)
    assert report["exposures"] == len(traffic.exposures)
    assert report["events"] == len(traffic.events)
    assert report["dead_letters"] == traffic.invalid
    assert (
        report["duplicates"]
        == len(traffic.sends) - len(traffic.exposures) - len(traffic.events) - traffic.invalid
    )
    tables = read_tables(home)
    assert_exact(tables, traffic)
    assert {(r["experiment_key"], r["variation_id"], r["variation_name"]) for r in tables["names"]} == {
        ("exp-a", 0, "Control"),
        ("exp-a", 1, "Treat"),
        ("exp-b", 0, "B0"),
        ("exp-b", 1, "B1"),
        ("exp-b", 2, "B2"),
    }
    # Dead letters were also produced to the topic, one per rejected record.
    # every record of the topic (read to its end offsets), so a dead letter written twice would count twice
    dead_letters = read_topics_to_end(kafka_settings, [DEAD_LETTERS], at_least=traffic.invalid, timeout=20)
    assert len(dead_letters) == traffic.invalid

    # A second run finds nothing new: offsets were committed after the inserts.
    again = run_worker(env, until_idle=1)
    assert again["consumed"] == 0
    # Valid records re-sent later (a producer replaying its log) add nothing either.
    valid = {RecordCodec(Exposure).encode(e) for e in traffic.exposures}
    valid |= {RecordCodec(MetricEvent).encode(e) for e in traffic.events}
    resent = [send for send in traffic.sends if send[2] in valid][:600]
    produce(kafka_settings, resent)
    replay = run_worker(env, until_idle=1)
    assert replay["consumed"] == len(resent) == replay["duplicates"]
    after = read_tables(home)
    assert sorted(after["exposure_ids"]) == sorted(tables["exposure_ids"])
    assert sorted(after["event_ids"]) == sorted(tables["event_ids"])
    assert sorted(after["attributed"]) == sorted(tables["attributed"])

    # After the fix (the experiment is registered), replaying its dead letters loads them once.
    fixed = {
        "experiments": {**REGISTRY["experiments"], "exp-unknown": {"variations": [{"id": 0, "key": "0"}]}}
    }
    registry_file.write_text(json.dumps(fixed))
    command = [sys.executable, "-m", "xpstream.cli", "stream", "replay-dead-letters"]
    replayed = subprocess.run(
        [*command, "--reason", "unknown_experiment", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["replayed"] == traffic.dead_reasons["unknown_experiment"]
    rerun = run_worker(env, until_idle=1)
    assert rerun["exposures"] == traffic.dead_reasons["unknown_experiment"]
    final = read_tables(home)
    assert len(final["exposure_ids"]) == len(traffic.exposures) + traffic.dead_reasons["unknown_experiment"]
    assert len(final["dead"]) == traffic.invalid  # the dead letters stay, as the audit trail
    # ... marked replayed, so the same replay again produces nothing and they no longer count as dead
    again_replayed = subprocess.run(
        [*command, "--reason", "unknown_experiment", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again_replayed.returncode == 0, again_replayed.stderr
    assert json.loads(again_replayed.stdout)["replayed"] == 0
    marks = subprocess.run(
        [
            sys.executable,
            "-m",
            "xpstream.cli",
            "sql",
            "--format",
            "json",
            "SELECT countDistinct(dead_letter_id) AS n, any(outcome) AS outcome FROM xp.dead_letter_replays",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert marks.returncode == 0, marks.stderr
    assert json.loads(marks.stdout) == [
        {"n": traffic.dead_reasons["unknown_experiment"], "outcome": "produced"}
    ]
    assert run_worker(env, until_idle=1)["consumed"] == 0  # nothing was produced the second time


def test_kill_9_mid_stream_then_restart_gives_exact_counts(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=6000, seed=2)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(kafka_settings, home, registry_file, XP_STREAM_BATCH_SIZE="300")
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--until-idle", "3", "--format", "json"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    committed = _wait_for_commits(kafka_settings, minimum=8000, timeout=60)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    assert 8000 <= committed < len(traffic.sends), "the kill must land mid-stream"

    report = run_worker(env)
    assert report["restored"]["dedup_ids"] > 0 and report["consumed"] > 0
    assert_exact(read_tables(home), traffic)


def _wait_for_commits(
    settings: KafkaSettings, *, minimum: int, timeout: float, group: str = "xp-stream"
) -> int:
    """Total committed offsets of the stream group once at least ``minimum`` (polling the broker)."""
    from confluent_kafka import KafkaException, TopicPartition

    from xpcore.kafka.clients import make_consumer

    probe = make_consumer(settings, group)
    try:
        partitions = [
            TopicPartition(settings.topic(topic), p)
            for topic in (EXPOSURES, EVENTS)
            for p in range(settings.topic_partitions)
        ]
        seen = [0]

        def enough_committed() -> int:
            try:
                seen[0] = sum(max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10))
            except KafkaException:  # coordinator not ready yet
                return 0
            return seen[0] if seen[0] >= minimum else 0

        committed: int = wait_until(
            enough_committed,
            timeout=timeout,
            interval=0.05,
            message=lambda: f"{minimum} committed offsets (saw {seen[0]})",
        )
        return committed
    finally:
        probe.close()


def test_sigterm_stops_gracefully_and_a_restart_resumes_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=3000, seed=3)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    (metrics_port,) = free_ports(1)
    env = worker_env(
        kafka_settings,
        home,
        registry_file,
        XP_STREAM_BATCH_SIZE="200",
        XP_STREAM_METRICS_PORT=str(metrics_port),
    )
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--format", "json"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_commits(kafka_settings, minimum=1000, timeout=60)
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    assert 'xp_stream_records_total{outcome="loaded"' in exposition
    assert "xp_stream_freshness_seconds_bucket" in exposition
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr[-2000:]
    first = json.loads(stdout)
    assert first["consumed"] > 0

    second = run_worker(env)
    assert first["consumed"] + second["consumed"] == len(traffic.sends)  # nothing read twice
    assert_exact(read_tables(home), traffic)


def test_worker_validates_against_the_registry_topic(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    from assignment.registry_topic import publish_changes
    from tests.unit.registry.helpers import experiment, record

    published = [record(experiment("exp-live", weights=(0.5, 0.5)))]
    publish_changes(kafka_settings, published)
    codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    at = datetime.now(UTC) - timedelta(minutes=1)
    sends = []
    for i, (key, variation) in enumerate(
        [("exp-live", 0), ("exp-live", 1), ("exp-live", 5), ("exp-gone", 0)]
    ):
        exposure = Exposure(
            exposure_id=f"live-{i}",
            unit_id=f"u{i}",
            hash_attribute="id",
            experiment_key=key,
            variation_id=variation,
            variation_key=str(variation),
            source=ExposureSource.SERVICE,
            exposed_at=at,
        )
        sends.append((EXPOSURES, exposure.unit_id.encode(), codec.encode(exposure)))
    produce(kafka_settings, sends)
    home = tmp_path / "xp-home"
    env = worker_env(kafka_settings, home, tmp_path / "unused.json")
    env.pop("XP_STREAM_REGISTRY_FILE")

    run_worker(env, until_idle=1)

    tables = read_tables(home)
    assert sorted(tables["exposure_ids"]) == ["live-0", "live-1"]
    assert {(r["variation_id"], r["variation_name"]) for r in tables["names"]} == {
        (0, "Variation 0"),
        (1, "Variation 1"),
    }
    assert sorted(r["reason"] for r in tables["dead"]) == ["unknown_experiment", "unknown_variation"]
    # The registry's audit history is copied into xp.registry, once, even after a second run.
    run_worker(env, until_idle=1)
    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        history = warehouse.query_arrow("SELECT record_id, key, change FROM xp.registry").to_pylist()
    finally:
        warehouse.close()
    assert [(r["record_id"], r["key"]) for r in history] == [(p.record_id, p.key) for p in published]
