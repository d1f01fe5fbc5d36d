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
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def store_owner(env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    """An `xp up` that serves the embedded store (and runs nothing else) while the block runs; it must
    exit 0 after."""
    with log.open("w") as sink:
        up = subprocess.Popen([sys.executable, "-m", "xpstream.cli", "up"], env=env, stdout=sink, stderr=sink)
    try:

        def serving() -> bool:
            assert up.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(serving, timeout=90, message="xp up serving the store")
        yield
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    assert up.returncode == 0, log.read_text()[-3000:]


def pool_env(kafka_settings: KafkaSettings, tmp_path: Path, port: int) -> dict[str, str]:
    """The workers' environment: loads routed through the `xp up` on ``port``, a short session timeout."""
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    env = worker_env(
        kafka_settings,
        tmp_path / "xp-home",
        registry_file,
        XP_STREAM_BATCH_SIZE="300",
        XP_UP_PORT=str(port),
        XP_UP_COMPONENTS="",
        XP_STREAM_SESSION_TIMEOUT_SECONDS="10",
        XP_LOG_LEVEL="INFO",
    )
    env.pop("XP_API_URL", None)
    return env


@pytest.mark.parametrize("runner", ["kafka", "faust"])
def test_three_workers_one_killed_9_mid_stream_end_exact(
    kafka_settings: KafkaSettings, tmp_path: Path, runner: str
) -> None:
    traffic = build_traffic(units=6000, seed=21)
    produce(kafka_settings, traffic.sends)
    (up_port,) = free_ports(1)
    env = pool_env(kafka_settings, tmp_path, up_port)
    with store_owner(env, up_port, tmp_path / "up.log"):
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
    assert_exact(read_tables(tmp_path / "xp-home"), traffic)


def test_two_faust_workers_one_joins_then_one_leaves_mid_stream_end_exact(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Faust worker A runs alone; B joins (partitions move to B); A leaves with SIGTERM right after more
    records were produced (its partitions move to B, which reads the rest); once the group has committed
    everything B stops with SIGTERM too: both exit 0 and the tables end exact."""
    traffic = build_traffic(units=3000, seed=23)
    third = len(traffic.sends) // 3
    produce(kafka_settings, traffic.sends[:third])
    (up_port,) = free_ports(1)
    env = pool_env(kafka_settings, tmp_path, up_port)
    with store_owner(env, up_port, tmp_path / "up.log"):
        logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
        report = tmp_path / "b.json"
        with logs["a"].open("w") as a_err, logs["b"].open("w") as b_err, report.open("w") as b_out:
            a = subprocess.Popen(worker_command("faust"), env=env, stdout=subprocess.DEVNULL, stderr=a_err)
            b: subprocess.Popen[bytes] | None = None
            try:
                _wait_for_commits(kafka_settings, minimum=third // 2, timeout=120)
                b = subprocess.Popen(worker_command("faust"), env=env, stdout=b_out, stderr=b_err)

                def b_holds_partitions() -> bool:
                    assert b is not None and b.poll() is None, logs["b"].read_text()[-3000:]
                    return "rebalance: state refreshed" in logs["b"].read_text()

                wait_until(b_holds_partitions, timeout=90, message="worker B assigned partitions")
                produce(kafka_settings, traffic.sends[third:])
                a.send_signal(signal.SIGTERM)
                committed = _wait_for_commits(kafka_settings, minimum=0, timeout=30)
                assert committed < len(traffic.sends), "A must leave mid-stream"
                assert a.wait(timeout=60) == 0, logs["a"].read_text()[-3000:]
                _wait_for_commits(kafka_settings, minimum=len(traffic.sends), timeout=180)
                b.send_signal(signal.SIGTERM)
                b.wait(timeout=60)
            finally:
                for worker in (a, b):
                    if worker is not None and worker.poll() is None:
                        worker.kill()
                        worker.wait()
        assert b.returncode == 0, logs["b"].read_text()[-3000:]
        assigned = [line for line in logs["b"].read_text().splitlines() if "faust_runner assigned" in line]
        assert len(assigned) >= 2, "B is assigned partitions when it joins, and again when A leaves"
        assert json.loads(report.read_text())["consumed"] > 0
    assert_exact(read_tables(tmp_path / "xp-home"), traffic)
