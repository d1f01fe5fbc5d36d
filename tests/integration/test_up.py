"""`xp up` as users run it: a subprocess on a real broker and a real chDB store in a temporary XP_HOME.

One test walks the whole life: start, /healthz ok, records produced to Kafka land in the store and are
read from other processes through the up API (`xp sql`, `xp jobs run stats`), a job scheduled every
second shows in xp.job_runs, SIGINT stops everything with exit 0 and releases the store.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import Exposure, MetricEvent, RecordCodec
from tests.factories import make_exposure
from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.kafka import EVENTS, EXPOSURES
from xpcore.warehouse import open_warehouse
from xpcore.warehouse.chdb import read_owner

pytestmark = pytest.mark.integration

REGISTRY = {
    "experiments": {
        "exp": {"variations": [{"id": 0, "key": "v0", "name": "A"}, {"id": 1, "key": "v1", "name": "B"}]}
    }
}
UNITS = 12


def xp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def wait_for(what: str, check: Any, timeout: float, log: Path) -> Any:
    """tests.fixtures.waiting.wait_until with the tail of xp up's log in the failure."""
    return wait_until(
        check, timeout=timeout, interval=0.5, message=lambda: f"{what}; xp up log:\n{log.read_text()[-4000:]}"
    )


def produce(settings: KafkaSettings) -> None:
    from xpcore.kafka.clients import make_producer

    exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    producer = make_producer(settings)
    for u in range(UNITS):
        unit = f"unit-{u}"
        exposure = make_exposure(unit, u % 2, now, 0, False)
        producer.produce(settings.topic(EXPOSURES), key=unit.encode(), value=exposure_codec.encode(exposure))
        event = MetricEvent(
            event_id=f"e-{unit}", unit_id=unit, event_name="pageview", occurred_at=now + timedelta(seconds=5)
        )
        producer.produce(settings.topic(EVENTS), key=unit.encode(), value=event_codec.encode(event))
    assert producer.flush(30) == 0


def test_up_serves_health_loads_the_stream_runs_jobs_routes_commands_and_stops_cleanly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    up_port, service_port, dashboard_port = free_ports(3)
    env = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STREAM_REGISTRY_FILE": str(registry_file),
        "XP_STREAM_GROUP_ID": f"{kafka_settings.topic_prefix}stream",
        "XP_UP_PORT": str(up_port),
        "XP_SERVICE_PORT": str(service_port),
        "XP_DASHBOARD_PORT": str(dashboard_port),
        "XP_SCHEDULE_STATS": "* * * * * *",  # every second (6th field: seconds)
        "XP_SCHEDULE_QUALITY": "",
        "XP_SCHEDULE_ETL": "",
        "XP_SCHEDULE_LAKE": "",
        "XP_SCHEDULE_EXPORT": "",
        "XP_STORE_WAIT_SECONDS": "10",
    }
    for name in ("XP_CLICKHOUSE_URL", "XP_API_URL", "XP_UP_COMPONENTS"):
        env.pop(name, None)
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "xpstream.cli", "up"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{up_port}"

        def healthy() -> dict[str, Any] | None:
            assert up.poll() is None, log.read_text()[-4000:]
            try:
                answer = httpx.get(f"{base}/healthz", timeout=5)
            except httpx.TransportError:
                return None
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 200 else None

        health = wait_for("GET /healthz 200", healthy, 90, log)
        components = health["components"]
        assert {name: components[name]["status"] for name in ("api", "stream", "scheduler", "service")} == {
            "api": "ok",
            "stream": "ok",
            "scheduler": "ok",
            "service": "ok",
        }
        assert components["dashboard"]["status"] in ("ok", "disabled")
        assert components["service"]["url"] == f"http://127.0.0.1:{service_port}"
        owner = read_owner(home / "warehouse")
        assert owner is not None and owner.pid == up.pid and owner.api_url == base

        # issue #13: the owner token sits in the 0600 lock file of a 0700 store; every /v1 request needs it
        assert stat.S_IMODE((home / "warehouse" / "xp-owner.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "warehouse").stat().st_mode) == 0o700
        assert owner.api_token and owner.api_token not in json.dumps(health)
        auth = {"Authorization": f"Bearer {owner.api_token}"}
        info = f"{base}/v1/warehouse"
        assert httpx.get(info, timeout=5).status_code == 401  # loopback, no token
        assert httpx.get(info, headers=auth, timeout=5).status_code == 200
        assert httpx.get(info, headers={**auth, "Host": "evil.example"}, timeout=5).status_code == 403
        ddl = {"sql": "CREATE TABLE xp.pwned (x String) ENGINE = Memory"}
        command = f"{base}/v1/warehouse/command"
        assert httpx.post(command, json=ddl, headers=auth, timeout=5).status_code == 403
        evil = {**auth, "Origin": "http://evil.example"}
        assert httpx.post(command, json=ddl, headers=evil, timeout=5).status_code == 403
        # the client's opt-in does not open the owner: its guard refuses file() through the API
        outside = xp(
            {**env, "XP_SQL_ALLOW_EXTERNAL": "true"},
            "sql",
            "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        )
        assert outside.returncode == 2 and "file() reaches outside" in outside.stderr, outside.stderr

        produce(kafka_settings)

        def exposures_counted() -> bool:
            result = xp(env, "sql", "SELECT count() AS n FROM xp.exposures", "--format", "json")
            assert result.returncode == 0, result.stderr
            return bool(json.loads(result.stdout) == [{"n": UNITS}])

        wait_for(f"{UNITS} exposures through `xp sql`", exposures_counted, 60, log)

        refused = xp(env, "sql", "SELECT * FROM xp.exposures SETTINGS readonly = 0", "--format", "json")
        assert refused.returncode != 0  # read-only is enforced by the owner's engine, through the API

        stats = xp(env, "jobs", "run", "stats")
        assert stats.returncode == 0, stats.stderr

        def scheduled_runs() -> list[dict[str, Any]]:
            result = xp(
                env,
                "sql",
                "SELECT job, outcome, success FROM xp.job_runs WHERE job = 'stats' LIMIT 3",
                "--format",
                "json",
            )
            assert result.returncode == 0, result.stderr
            rows: list[dict[str, Any]] = json.loads(result.stdout)
            return rows

        runs = wait_for("a scheduled stats run in xp.job_runs", scheduled_runs, 30, log)
        assert all(run["job"] == "stats" and run["outcome"] in ("ok", "failed") for run in runs)

        # issue #21: the running `xp up` is found by its XP_HOME, named by pid, and stopped by command
        assert health["pid"] == up.pid
        status = xp(env, "up", "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert (report["running"], report["pid"], report["status"]) == (True, up.pid, "ok")
        assert report["health_url"] == f"{base}/healthz" and report["components"]["stream"] == "ok"
        stopped = xp(env, "up", "stop", "--timeout", "45")
        assert stopped.returncode == 0 and f"pid {up.pid}" in stopped.stdout, stopped.stderr
        assert up.wait(timeout=5) == 0, log.read_text()[-4000:]
        after = xp(env, "up", "status", "--format", "json")
        assert after.returncode == 1 and json.loads(after.stdout)["running"] is False
        assert not (home / "run" / "xp-up.json").exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=30)

    text = log.read_text()
    assert "stream: worker stopped" in text and "up: stopped; warehouse closed" in text
    assert read_owner(home / "warehouse") is None  # the lock file is emptied on release
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=0))
    try:
        assert store.kind == "chdb"  # opened directly: the lock was released
        assert store.query_arrow("SELECT count() AS n FROM xp.exposures").to_pylist() == [{"n": UNITS}]
        assert store.query_arrow("SELECT count() AS n FROM xp.events").to_pylist() == [{"n": UNITS}]
    finally:
        store.close()
