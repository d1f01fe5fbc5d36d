"""A broker restart mid-stream: the worker rides it out (retries), and the counts are exact.

Uses its own broker (the session broker is shared by other tests, so it must not be restarted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.kafka import free_ports
from tests.integration.test_stream_worker import (
    REGISTRY,
    _wait_for_commits,
    assert_exact,
    build_traffic,
    produce,
    read_tables,
    worker_env,
)
from xpstream.config import KafkaSettings, StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[StackSettings]:
    from xpstream.stack import start_kafka, stop_kafka

    port, controller = free_ports(2)
    stack = StackSettings(
        home=tmp_path / "kafka-home",
        kafka_port=port,
        kafka_controller_port=controller,
        kafka_bootstrap=f"127.0.0.1:{port}",
        topic_prefix="restart.",
        kafka_stop_timeout=20.0,
    )
    start_kafka(stack)
    try:
        yield stack
    finally:
        stop_kafka(stack)


def test_broker_restart_mid_stream_gives_exact_counts(own_broker: StackSettings, tmp_path: Path) -> None:
    from xpstream.stack import start_kafka, stop_kafka

    kafka = KafkaSettings(kafka_bootstrap=own_broker.kafka_bootstrap, topic_prefix=own_broker.topic_prefix)
    traffic = build_traffic(units=5000, seed=4)
    produce(kafka, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(kafka, home, registry_file, XP_STREAM_BATCH_SIZE="200", XP_LOG_LEVEL="INFO")
    command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--until-idle", "3", "--format", "json"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        committed = _wait_for_commits(kafka, minimum=1500, timeout=60)
        assert committed < len(traffic.sends), "the restart must land mid-stream"
        stop_kafka(own_broker)
        time.sleep(2)
        start_kafka(own_broker)
        stdout, stderr = worker.communicate(timeout=150)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)
    assert report["consumed"] >= len(traffic.sends), stderr[-4000:]
    assert_exact(read_tables(home), traffic)
