"""`xp stream run --workers 3`: three supervised workers in one group, one killed -9 mid-stream, exact.

The embedded store is owned by an `xp up` that runs no component but its API (`XP_UP_COMPONENTS=""`),
so the three worker processes route their loads to it (as extra workers do in production without a
ClickHouse server). For both runners: the killed worker is restarted by the supervisor, the group
rebalances (partitions move to the survivors, then back to the restarted worker), and the tables end
exact. The helpers are the Kafka runner's (tests/integration/test_stream_worker.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
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
from xpcore.config import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:  # exited meanwhile
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


FAUST_SEVERAL_WORKERS = pytest.mark.xfail(
    reason="not proven exact: 1 run in 4 on 2026-12-05 (load ~18, loads routed through xp up) kept 4 "
    "dead letters twice, another failed unexplained; documented in docs/pipeline.md and decision 0074",
    strict=False,
)


@pytest.mark.parametrize("runner", ["kafka", pytest.param("faust", marks=FAUST_SEVERAL_WORKERS)])
def test_three_workers_one_killed_9_mid_stream_end_exact(
    kafka_settings: KafkaSettings, tmp_path: Path, runner: str
) -> None:
    traffic = build_traffic(units=6000, seed=21)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    (up_port,) = free_ports(1)
    env = worker_env(
        kafka_settings,
        home,
        registry_file,
        XP_STREAM_BATCH_SIZE="300",
        XP_UP_PORT=str(up_port),
        XP_UP_COMPONENTS="",
        XP_STREAM_SESSION_TIMEOUT_SECONDS="10",
        XP_LOG_LEVEL="INFO",
    )
    env.pop("XP_API_URL", None)
    up_log = tmp_path / "up.log"
    with up_log.open("w") as sink:
        up = subprocess.Popen([sys.executable, "-m", "xpstream.cli", "up"], env=env, stdout=sink, stderr=sink)
    try:

        def serving() -> bool:
            assert up.poll() is None, up_log.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{up_port}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(serving, timeout=90, message="xp up serving the store")
        pool_log = tmp_path / "pool.log"
        with pool_log.open("w") as err, (tmp_path / "pool.json").open("w") as out:
            pool = subprocess.Popen(
                [*worker_command(runner, "--until-idle", "3"), "--workers", "3"],
                env=env,
                stdout=out,
                stderr=err,
            )
            try:
                committed = _wait_for_commits(kafka_settings, minimum=4000, timeout=180)
                workers = wait_until(
                    lambda: (found := children_of(pool.pid)) and len(found) == 3 and found,
                    timeout=30,
                    message="three worker processes",
                )
                os.kill(workers[0], signal.SIGKILL)
                assert committed < len(traffic.sends), "the kill must land mid-stream"
                pool.wait(timeout=600)
            finally:
                if pool.poll() is None:
                    pool.kill()
                    pool.wait()
        assert pool.returncode == 0, pool_log.read_text()[-4000:]
        report = json.loads((tmp_path / "pool.json").read_text())
        assert report["workers"] == 3 and report["restarts"] >= 1
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    assert up.returncode == 0, up_log.read_text()[-3000:]
    assert_exact(read_tables(home), traffic)
