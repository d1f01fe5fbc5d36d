"""Issue #13, item 6: exposures the service acknowledged survive a ``kill -9`` during a broker outage.

A real `xp assign serve` process (a subprocess) serves N assignments while its broker is unreachable
(the records sit in librdkafka's memory: before the write-ahead spool, a kill -9 lost all of them),
is killed with SIGKILL, and restarts with the broker reachable: exactly the acknowledged exposures
arrive on ``xp.exposures`` — each once (distinct ids and total).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from schemas import Exposure, RecordCodec
from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from tests.integration.test_service_exposures import _consume, _expected, _units
from tests.unit.service.conftest import PAYLOAD
from xpcore.config import KafkaSettings
from xpcore.kafka.topics import EXPOSURES

pytestmark = pytest.mark.integration

CODEC = RecordCodec(Exposure)


def _kafka_env(settings: KafkaSettings) -> dict[str, str]:
    """XP_* variables for every Kafka setting of the fixture (security settings included)."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        if name == "home":
            continue
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, dict | list | tuple | set):
            value = json.dumps(value if not isinstance(value, set) else sorted(value))
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"XP_{name.upper()}"] = str(value)
    return env


@contextmanager
def _service(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "xpstream.cli", "assign", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _health(base: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{base}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def test_acknowledged_exposures_survive_kill_9_during_an_outage(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    features = tmp_path / "features.json"
    features.write_text(json.dumps(PAYLOAD))
    port, dead_broker = free_ports(2)  # nothing listens on dead_broker: Kafka is unreachable
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **_kafka_env(kafka_settings),
        "XP_HOME": str(tmp_path / "home"),
        "XP_SERVICE_FEATURES_FILE": str(features),
        "XP_SPOOL_REPLAY_INTERVAL": "0.2",
        "XP_EXPOSURE_DELIVERY_TIMEOUT": "60",  # the records stay in librdkafka's memory until the kill
    }
    log = tmp_path / "service.log"
    units = _units(0, 120)
    expected = _expected(units)
    with _service({**env, "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead_broker}"}, port, log) as process:
        wait_until(
            lambda: _health(base) is not None,
            timeout=60,
            interval=0.2,
            message=lambda: f"the service to start ({log.read_text()[-2000:]})",
        )
        with httpx.Client(base_url=base, timeout=10.0) as client:
            for unit in units:
                assert client.post("/v1/assign", json={"attributes": unit}).status_code == 200
        health = _health(base)
        assert health is not None and health["sink"]["delivered"] == 0  # nothing reached Kafka
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    with _service(env, port, log):
        wait_until(
            lambda: _health(base) is not None, timeout=60, interval=0.2, message="the service to restart"
        )
        wait_until(
            lambda: (
                (h := _health(base)) is not None
                and not h["sink"]["spooling"]
                and h["sink"]["spool_pending_bytes"] == 0
            ),
            timeout=90,
            interval=0.2,
            message="the spool to replay",
        )
    records = _consume(kafka_settings, EXPOSURES, len(expected), timeout=60.0)
    exposures = [CODEC.decode(value) for _, value in records]
    ids = [e.exposure_id for e in exposures]
    assert len(ids) == len(expected), f"{len(ids)} exposures on the topic, {len(expected)} acknowledged"
    assert len(set(ids)) == len(expected), "an exposure arrived twice"
    assert {(e.experiment_key, e.unit_id, e.variation_id) for e in exposures} == expected
