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
    """Faust worker A runs alone mid-stream; B joins (partitions move to B); A leaves with SIGTERM (its
    partitions move to B, which drains the rest): both exit 0 and the tables end exact."""
    traffic = build_traffic(units=3000, seed=23)
    produce(kafka_settings, traffic.sends)
    (up_port,) = free_ports(1)
    env = pool_env(kafka_settings, tmp_path, up_port)
    with store_owner(env, up_port, tmp_path / "up.log"):
        logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
        with logs["a"].open("w") as a_err, logs["b"].open("w") as b_err:
            a = subprocess.Popen(worker_command("faust"), env=env, stdout=subprocess.DEVNULL, stderr=a_err)
            b: subprocess.Popen[bytes] | None = None
            try:
                first = _wait_for_commits(kafka_settings, minimum=1500, timeout=120)
                b = subprocess.Popen(
                    worker_command("faust", "--until-idle", "3"),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=b_err,
                )

                def b_took_partitions() -> bool:
                    assert b is not None and b.poll() is None, logs["b"].read_text()[-3000:]
                    return "rebalance: state refreshed" in logs["b"].read_text()

                wait_until(b_took_partitions, timeout=90, message="worker B assigned partitions")
                both = _wait_for_commits(kafka_settings, minimum=first + 1500, timeout=120)
                a.send_signal(signal.SIGTERM)
                assert both < len(traffic.sends), "A must leave mid-stream"
                assert a.wait(timeout=60) == 0, logs["a"].read_text()[-3000:]
                out, _ = b.communicate(timeout=180)
            finally:
                for worker in (a, b):
                    if worker is not None and worker.poll() is None:
                        worker.kill()
                        worker.wait()
        assert b.returncode == 0, logs["b"].read_text()[-3000:]
        assigned = [line for line in logs["b"].read_text().splitlines() if "faust_runner assigned" in line]
        assert len(assigned) >= 2, "B must be assigned partitions twice: when it joined and when A left"
        assert json.loads(out)["consumed"] > 0
    assert_exact(read_tables(tmp_path / "xp-home"), traffic)
