"""`xp stream run --runner flink` against the real broker and chDB: the Flink job on its local mini-cluster.

- equivalence: the same records (invalid, duplicate, late, out of order) loaded once by ``--runner kafka``
  and once by ``--runner flink`` into two stores leave identical tables, row for row (every column but the
  times of loading: ``ingested_at``, ``received_at``);
- exactly once: the process group of ``xp stream run --runner flink`` (the loader, the job's Python and its
  JVM) killed with SIGKILL twice mid-stream, then a run to the end: exact tables;
- hostile input: a record on a hand-off topic that the job did not write (no source headers) stops the
  loader with one line and loads nothing of it.

Needs ``make flink`` (.venv-flink and deploy/flink/lib); each test starts a JVM (~10–20 s), so there are few.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.flink.settings import FlinkSettings
from tests.fixtures.waiting import wait_until
from tests.integration.test_stream_worker import (
    REGISTRY,
    assert_exact,
    build_traffic,
    produce,
    read_tables,
    worker_env,
)
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.kafka.topics import FLINK_ATTRIBUTIONS, FLINK_EVENTS
from xpcore.warehouse import open_warehouse

pytestmark = [pytest.mark.integration, pytest.mark.flink, pytest.mark.timeout(900)]

_DEFAULTS = FlinkSettings()
if not _DEFAULTS.python.exists() or not any(_DEFAULTS.jars_dir.glob("*.jar")):
    pytestmark.append(pytest.mark.skip(reason="no .venv-flink or deploy/flink/lib: run `make flink`"))

TABLES = {
    "xp.exposures": "exposure_id",
    "xp.events": "event_id",
    "xp.attributed_events": "event_id, experiment_key",
    "xp.dead_letters": "source_topic, source_partition, source_offset",
}
LOAD_TIMES = ("ingested_at", "received_at", "attributed_at")
# a loader run that must stop at its first batch: it ends with rc 1 long before the idle time
STOPPING_RUN = [
    *(sys.executable, "-m", "xpstream.cli", "stream", "run"),
    *("--runner", "flink", "--until-idle", "2"),
]
GOOD_ROW = dict(  # a row of the job's attribution (decision 0105)
    event_id="e1", unit_id="u1", experiment_key="exp-a", variation_id=1, event_name="purchase", value=None
) | {"occurred_us": 1_700_000_061_000_000, "first_us": 1_700_000_000_000_000}


def flink_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **env,
        "XP_STREAM_GROUP_ID": "xp-flink-test",
        "XP_FLINK_CHECKPOINT_INTERVAL_SECONDS": "1",
        **extra,
    }


def run_stream(
    env: dict[str, str], runner: str, until_idle: float = 3, timeout: float = 480
) -> dict[str, Any]:
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--runner", runner]
    command += ["--until-idle", str(until_idle), "--format", "json"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def table_rows(home: Path) -> dict[str, Any]:
    """Every row of the stream's tables (Arrow), all columns but the load times, in a stable order (the
    dead letters' ``original`` holds raw bytes: compared as Arrow buffers, not decoded)."""
    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        out: dict[str, Any] = {}
        for table, order in TABLES.items():
            data = warehouse.query_arrow(f"SELECT * FROM {table} ORDER BY {order}")
            out[table] = data.drop_columns([c for c in LOAD_TIMES if c in data.column_names])
        return out
    finally:
        warehouse.close()


def assert_same_tables(flink_home: Path, kafka_home: Path) -> None:
    expected = table_rows(kafka_home)
    got = table_rows(flink_home)
    for table in TABLES:
        assert got[table].num_rows == expected[table].num_rows, table
        assert got[table].column_names == expected[table].column_names, table
        for column in expected[table].column_names:
            assert got[table].column(column).equals(expected[table].column(column)), (table, column)


def assert_verdicts_agree(report: dict[str, Any], decided_at_least: float) -> None:
    """Every verdict the job decided is the kernel's, and the job decided nearly every record."""
    verdicts = report["verdicts"]
    assert verdicts.get("disagree", 0) == 0 and verdicts.get("unconfirmed", 0) == 0, verdicts
    assert verdicts["agree"] >= decided_at_least * report["consumed"] > 0, (verdicts, report["consumed"])


def assert_checked_against_the_job(report: dict[str, Any]) -> None:
    """Check mode (decision 0102): every attribution row loaded (the kernel's) was also produced by the
    job's JVM attribution, equal in every column, and the job produced no other row."""
    attributions = report["attributions"]
    assert attributions.get("agree", 0) == report["attributed"] > 0, (attributions, report["attributed"])
    for other in ("disagree", "job_only", "kernel_only"):
        assert attributions.get(other, 0) == 0, attributions


def assert_attributed_by_the_job(report: dict[str, Any]) -> None:
    """Trust mode (decision 0105): every attribution row loaded came from the job's JVM attribution (none
    from the kernel: no event here is left `undecided` by the job and kept), none skipped as replayed."""
    attributions = report["attributions"]
    assert attributions.get("job", 0) == report["attributed"] > 0, (attributions, report["attributed"])
    for other in ("kernel", "replayed", "agree", "disagree"):
        assert attributions.get(other, 0) == 0, attributions


def test_flink_runner_leaves_the_same_tables_as_the_kafka_runner(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=300, seed=5)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))

    kafka_home = tmp_path / "kafka-home"
    by_kafka = run_stream(worker_env(kafka_settings, kafka_home, registry_file), "kafka")
    flink_home = tmp_path / "flink-home"
    env = flink_env(worker_env(kafka_settings, flink_home, registry_file))
    by_flink = run_stream(env, "flink")

    assert by_flink["exposures"] == by_kafka["exposures"] == len(traffic.exposures)
    assert by_flink["events"] == by_kafka["events"] == len(traffic.events)
    assert by_flink["dead_letters"] == by_kafka["dead_letters"] == traffic.invalid
    assert_same_tables(flink_home, kafka_home)
    assert_exact(read_tables(flink_home), traffic)
    assert_verdicts_agree(by_flink, decided_at_least=0.95)
    assert_attributed_by_the_job(by_flink)
    # Checkpoints went under $XP_HOME, and a second run (restored from the newest) finds nothing new.
    assert list((flink_home / "flink" / "checkpoints").glob("*/chk-*/_metadata"))
    again = run_stream(env, "flink", until_idle=1)
    assert again["consumed"] == 0


def test_the_same_tables_on_a_loadgen_workload(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    from tests.integration.test_results import LIFT_PAYLOAD, LIFT_REGISTRY, run_xp

    payload, registry_file = tmp_path / "payload.json", tmp_path / "registry.json"
    payload.write_text(json.dumps(LIFT_PAYLOAD))
    registry_file.write_text(json.dumps(LIFT_REGISTRY))
    kafka_home, flink_home = tmp_path / "kafka-home", tmp_path / "flink-home"
    kafka_env = worker_env(kafka_settings, kafka_home, registry_file, XP_STREAM_MAX_LATENESS_SECONDS="604800")
    mix = ["--invalid-fraction", "0.03", "--duplicate-fraction", "0.05", "--late-fraction", "0.05"]
    sent = json.loads(
        run_xp(
            kafka_env,
            "loadgen",
            "--features",
            str(payload),
            "--users",
            "800",
            *mix,
            "--seed",
            "4",
            "--format",
            "json",
        )
    )
    assert sent["invalid"] > 0 and sent["duplicates"] > 0 and sent["late"] > 0

    by_kafka = run_stream(kafka_env, "kafka")
    by_flink = run_stream(flink_env({**kafka_env, "XP_HOME": str(flink_home)}), "flink")

    assert by_kafka["exposures"] == sent["exposures"] and by_kafka["events"] == sent["events"]
    for count in ("exposures", "events", "attributed", "dead_letters"):
        assert by_flink[count] == by_kafka[count], count
    assert_same_tables(flink_home, kafka_home)
    assert_verdicts_agree(by_flink, decided_at_least=0.95)
    assert_attributed_by_the_job(by_flink)


def test_trust_mode_differs_only_where_decision_0105_says(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The one case where trust mode's rows are not the Kafka runner's: an exposure the job leaves
    `undecided` (a time with a `+00:00` offset) and the kernel keeps is not in the job's state, so the job
    does not attribute that unit's `ok` events to it. An event the job leaves undecided and the kernel
    keeps is attributed by the kernel (its state has every exposure): the same row as the Kafka runner's."""
    from datetime import UTC, datetime, timedelta

    from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    exposures, events = RecordCodec(Exposure), RecordCodec(MetricEvent)

    def exposure(unit: str, offset_time: bool) -> tuple[str, bytes, bytes]:
        value = exposures.encode(
            Exposure(
                exposure_id=f"x-{unit}",
                unit_id=unit,
                hash_attribute="id",
                experiment_key="exp-a",
                variation_id=1,
                variation_key="t",
                source=ExposureSource.SDK,
                exposed_at=now,
            )
        )
        return ("xp.exposures", unit.encode(), value.replace(b'Z"', b'+00:00"') if offset_time else value)

    def purchase(unit: str, offset_time: bool) -> tuple[str, bytes, bytes]:
        at = now + timedelta(seconds=30)
        value = events.encode(
            MetricEvent(event_id=f"e-{unit}", unit_id=unit, event_name="purchase", occurred_at=at)
        )
        return ("xp.events", unit.encode(), value.replace(b'Z"', b'+00:00"') if offset_time else value)

    # u-x: its exposure undecided (kept by the kernel), its event ok → the job's row is missing;
    # u-e: its exposure ok, its event undecided (kept) → the kernel's row; u-ok: both ok → the job's row.
    sends = [exposure("u-x", True), exposure("u-e", False), exposure("u-ok", False)]
    produce(kafka_settings, sends)
    produce(kafka_settings, [purchase("u-x", False), purchase("u-e", True), purchase("u-ok", False)])
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    kafka_home, flink_home = tmp_path / "kafka-home", tmp_path / "flink-home"
    by_kafka = run_stream(worker_env(kafka_settings, kafka_home, registry_file), "kafka")
    by_flink = run_stream(flink_env(worker_env(kafka_settings, flink_home, registry_file)), "flink")

    def attributed(home: Path) -> set[str]:
        return set(table_rows(home)["xp.attributed_events"].column("event_id").to_pylist())

    assert by_kafka["exposures"] == by_flink["exposures"] == 3 and by_flink["events"] == 3
    assert by_flink["verdicts"]["undecided"] == 2, by_flink["verdicts"]
    assert attributed(kafka_home) == {"e-u-x", "e-u-e", "e-u-ok"}
    assert attributed(flink_home) == {"e-u-e", "e-u-ok"}  # the documented difference, and only it
    assert by_flink["attributions"] == {"job": 1, "kernel": 1}, by_flink["attributions"]


def test_kill_9_of_the_process_group_twice_then_exact(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    traffic = build_traffic(units=4000, seed=6)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = flink_env(worker_env(kafka_settings, home, registry_file, XP_STREAM_BATCH_SIZE="300"))
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--runner", "flink", "--format", "json"]
    loader_group = "xp-flink-test-flink-loader"

    def loaded_offsets() -> int:
        partitions = [
            TopicPartition(kafka_settings.topic(topic), p)
            for topic in ("xp.flink.exposures", "xp.flink.events")
            for p in range(kafka_settings.topic_partitions)
        ]
        probe = Consumer({**kafka_settings.confluent_config("admin"), "group.id": loader_group})
        try:
            for attempt in range(10):  # the group's coordinator may still be loading (NOT_COORDINATOR)
                try:
                    return sum(max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10))
                except KafkaException:
                    if attempt == 9:
                        raise
                    time.sleep(1)
            raise AssertionError("unreachable")
        finally:
            probe.close()

    kills = []
    for round_number in (1, 2):
        before = loaded_offsets()
        # Its own session: the process group is `xp stream run`, the job's Python and the job's JVM.
        worker = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

        def progressed(before: int = before, worker: subprocess.Popen[bytes] = worker) -> bool:
            return loaded_offsets() > before + 500 or worker.poll() is not None

        # Kill once the loader has committed more (the job is checkpointing and handing off mid-stream).
        wait_until(progressed, timeout=420, message=f"round {round_number}: the loader committed nothing new")
        assert worker.poll() is None, "the run ended before the kill"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        kills.append(loaded_offsets())
    assert kills[0] < kills[1] < len(traffic.sends), "the kills must land mid-stream, after progress"

    report = run_stream(env, "flink", until_idle=3)
    assert report["consumed"] > 0
    assert report["attributions"].get("job", 0) > 0 and not report["attributions"].get("kernel"), report
    assert_exact(read_tables(home), traffic)  # trust mode: the job's rows, each once


def test_a_hand_off_record_without_its_source_stops_the_loader(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from xpcore.kafka.clients import make_producer

    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    producer = make_producer(kafka_settings)  # the admin: nobody else may write a hand-off topic
    producer.produce(kafka_settings.topic(FLINK_EVENTS), key=b"u1", value=b'{"event_id": "forged"}')
    assert producer.flush(30) == 0
    env = flink_env(worker_env(kafka_settings, home, registry_file))
    result = subprocess.run(STOPPING_RUN, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 1
    assert "no valid source headers" in result.stderr
    assert "only the Flink job may write the hand-off topics" in result.stderr
    assert table_rows(home)["xp.events"].num_rows == 0


@pytest.mark.parametrize(
    ("key", "forged", "why"),
    [
        (b"u1", b'{"event_id": "forged"}', "not an object of exactly the fields"),
        (b"u2", json.dumps(GOOD_ROW).encode(), "its Kafka key is not its unit_id"),  # a foreign key
        (
            b"u1",
            json.dumps({**GOOD_ROW, "experiment_key": "exp-z"}).encode(),
            "experiment 'exp-z' variation 1 is",
        ),
    ],
    ids=["malformed", "foreign-key", "unknown-experiment"],
)
def test_a_forged_attribution_row_stops_the_loader_in_trust_mode(
    kafka_settings: KafkaSettings, tmp_path: Path, key: bytes, forged: bytes, why: str
) -> None:
    """Trust mode loads the job's rows: a record of xp.flink.attributions the job did not write stops the
    loader with one line naming it and why; nothing of its batch is loaded (not the valid row before it),
    and its offset is not committed. The loader alone (the job on a "cluster"): no JVM needed."""
    from confluent_kafka import Consumer, TopicPartition

    from xpcore.kafka.clients import make_producer

    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    producer = make_producer(kafka_settings)  # the admin: nobody else may write a hand-off topic
    topic = kafka_settings.topic(FLINK_ATTRIBUTIONS)
    producer.produce(topic, key=b"u1", value=json.dumps(GOOD_ROW).encode(), partition=0)
    producer.produce(topic, key=key, value=forged, partition=0)
    assert producer.flush(30) == 0
    env = flink_env(worker_env(kafka_settings, home, registry_file), XP_FLINK_LOCAL_JOB="false")
    result = subprocess.run(STOPPING_RUN, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"a record of {topic} is not the job's row: {topic}/0@1: {why}" in result.stderr, result.stderr[
        -3000:
    ]
    assert result.stderr.strip().count("\n") == 0, result.stderr[-3000:]  # one line
    assert table_rows(home)["xp.attributed_events"].num_rows == 0
    probe = Consumer({**kafka_settings.confluent_config("admin"), "group.id": "xp-flink-test-flink-loader"})
    try:  # neither row's offset committed: a fixed loader reads both again
        assert probe.committed([TopicPartition(topic, 0)], timeout=10)[0].offset < 0
    finally:
        probe.close()


def test_a_registry_change_restarts_the_job_with_the_new_lists(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The worker follows xp.registry; an experiment added while the job runs restarts the job (from its
    checkpoint) with the new lists, so its records get the kernel's verdict (`ok`) from the job too."""
    from datetime import UTC, datetime

    from confluent_kafka import Consumer, TopicPartition

    from assignment.authoring import load_registry_file
    from assignment.registry_changes import plan_changes
    from assignment.registry_topic import publish_changes, read_registry
    from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec

    example = Path(__file__).resolve().parents[2] / "examples" / "experiments.yaml"
    changed = tmp_path / "experiments.yaml"
    changed.write_text(example.read_text().replace("key: search-ranking-v2", "key: search-ranking-v3"))

    def publish(path: Path) -> None:
        registry = read_registry(kafka_settings)
        now = datetime.now(UTC)
        publish_changes(kafka_settings, plan_changes(registry, load_registry_file(path), actor="t", now=now))

    def exposures(experiment: str, count: int) -> list[tuple[str, bytes, bytes]]:
        codec = RecordCodec(Exposure)
        now = datetime.now(UTC)
        return [
            (
                "xp.exposures",
                f"u{i}".encode(),
                codec.encode(
                    Exposure(
                        exposure_id=f"{experiment}-{i}",
                        unit_id=f"u{i}",
                        hash_attribute="id",
                        experiment_key=experiment,
                        variation_id=i % 2,
                        variation_key=str(i % 2),
                        source=ExposureSource.LOADGEN,
                        exposed_at=now,
                    )
                ),
            )
            for i in range(count)
        ]

    def purchases(count: int) -> list[tuple[str, bytes, bytes]]:
        codec = RecordCodec(MetricEvent)
        now = datetime.now(UTC)
        return [
            (
                "xp.events",
                f"u{i}".encode(),
                codec.encode(
                    MetricEvent(event_id=f"e{i}", unit_id=f"u{i}", event_name="purchase", occurred_at=now)
                ),
            )
            for i in range(count)
        ]

    def loaded(topic: str = "xp.flink.exposures") -> int:
        partitions = [
            TopicPartition(kafka_settings.topic(topic), p) for p in range(kafka_settings.topic_partitions)
        ]
        probe = Consumer(
            {**kafka_settings.confluent_config("admin"), "group.id": "xp-flink-test-flink-loader"}
        )
        try:
            return sum(max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10))
        finally:
            probe.close()

    publish(example)
    home = tmp_path / "xp-home"
    # Check mode (decision 0102) here: the kernel's rows loaded, the job's counted against them.
    env = flink_env(worker_env(kafka_settings, home, tmp_path / "unused.json"), XP_FLINK_ATTRIBUTION="check")
    env.pop("XP_STREAM_REGISTRY_FILE")
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--runner", "flink", "--format", "json"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_log = home / "flink" / "job.log"

    def job_starts() -> int:
        return job_log.read_text(errors="replace").count("xp-flink job ") if job_log.exists() else 0

    try:
        produce(kafka_settings, exposures("checkout-button", 50))
        wait_until(lambda: loaded() > 0, timeout=300, message="the loader committed nothing")
        produce(kafka_settings, purchases(50))  # after their units' exposures: attributed
        wait_until(lambda: loaded("xp.flink.events") >= 50, timeout=300, message="no events loaded")
        wait_until(lambda: loaded("xp.flink.attributions") >= 50, timeout=300, message="no job rows read")
        assert job_starts() == 1
        publish(changed)  # search-ranking-v3 added (v2 gone)
        wait_until(lambda: job_starts() == 2, timeout=120, message="the job was not restarted")
        before = loaded()
        produce(kafka_settings, exposures("search-ranking-v3", 40))
        wait_until(lambda: loaded() >= before + 40, timeout=300, message="the new records were not loaded")
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["exposures"] == 90 and report["dead_letters"] == 0, report
    # the new experiment's records were judged `ok` by the restarted job, as by the kernel
    assert report["verdicts"].get("disagree", 0) == 0 and report["verdicts"]["agree"] == 140, report
    assert report["attributed"] == 50
    assert_checked_against_the_job(report)
