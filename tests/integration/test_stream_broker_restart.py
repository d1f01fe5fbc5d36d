"""A broker restart mid-stream: the worker rides it out (retries), and the counts are exact.

Uses its own broker (the session broker is shared by other tests, so it must not be restarted).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import kafka as kafka_fixtures
from tests.integration.test_stream_worker import (
    REGISTRY,
    _wait_for_commits,
    assert_exact,
    build_traffic,
    produce,
    read_tables,
    worker_command,
    worker_env,
)
from xpcore.config import KafkaSettings, StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackSettings]:
    with kafka_fixtures.own_broker(
        tmp_path / "kafka-home", monkeypatch, topic_prefix="restart.", kafka_stop_timeout=20.0
    ) as stack:
        yield stack


@pytest.mark.parametrize("runner", ["kafka", "faust"])
def test_broker_restart_mid_stream_gives_exact_counts(
    own_broker: StackSettings, tmp_path: Path, runner: str
) -> None:
    from xpstream.stack import start_kafka, stop_kafka

    kafka = KafkaSettings(kafka_bootstrap=own_broker.kafka_bootstrap, topic_prefix=own_broker.topic_prefix)
    traffic = build_traffic(units=5000, seed=4)
    produce(kafka, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(kafka, home, registry_file, XP_STREAM_BATCH_SIZE="200", XP_LOG_LEVEL="INFO")
    command = worker_command(runner, "--until-idle", "3")
    # Files, not pipes: the INFO log of a slow run must never fill a pipe and stall the worker.
    stdout_path, stderr_path = tmp_path / "worker.out", tmp_path / "worker.err"
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        try:
            # Generous, and bounded by progress: a loaded machine starts the worker slowly.
            committed = _wait_for_commits(kafka, minimum=1500, timeout=STALL_SECONDS)
            assert 1500 <= committed < len(traffic.sends), "the restart must land mid-stream"
            stop_kafka(own_broker)
            time.sleep(2)
            start_kafka(own_broker)
            _wait_while_progressing(worker, kafka, stderr_path)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    stdout, stderr = stdout_path.read_text(), stderr_path.read_text()
    assert worker.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)
    assert report["consumed"] >= len(traffic.sends), stderr[-4000:]
    assert_exact(read_tables(home), traffic)


STALL_SECONDS = 180.0
"""Longest time without a new committed offset (broker restart and group rejoin included) before failing."""
CAP_SECONDS = 1200.0
"""Longest run in total, however slowly it progresses."""


def _wait_while_progressing(worker: subprocess.Popen[str], kafka: KafkaSettings, stderr: Path) -> None:
    """Wait for the worker to exit; fail only when its committed offsets stop moving for STALL_SECONDS
    (or after CAP_SECONDS): a timeout derived from progress, not from wall time alone."""
    from confluent_kafka import KafkaException, TopicPartition

    from xpcore.kafka import EVENTS, EXPOSURES
    from xpcore.kafka.clients import make_consumer

    probe = make_consumer(kafka, "xp-stream")
    partitions = [
        TopicPartition(kafka.topic(topic), p)
        for topic in (EXPOSURES, EVENTS)
        for p in range(kafka.topic_partitions)
    ]
    started = last_change = time.monotonic()
    last_total = -1
    try:
        while worker.poll() is None:
            now = time.monotonic()
            try:
                total = sum(max(tp.offset, 0) for tp in probe.committed(partitions, timeout=5))
            except KafkaException:  # the broker restarting, the coordinator moving: no news
                total = last_total
            if total != last_total:
                last_total, last_change = total, now
            if now - last_change > STALL_SECONDS or now - started > CAP_SECONDS:
                pytest.fail(
                    f"worker made no progress for {now - last_change:.0f}s (committed {last_total}, "
                    f"{now - started:.0f}s in all): {stderr.read_text()[-3000:]}"
                )
            time.sleep(1.0)
    finally:
        probe.close()
