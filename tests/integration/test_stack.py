"""`xp stack up|status|down` as a person runs it: the real `xp` command, a real broker, a temp XP_HOME."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.kafka import free_ports

pytestmark = pytest.mark.integration

XP = Path(sys.executable).with_name("xp")

Xp = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a person with their own XP_HOME and free ports (no XP_* leaking in)."""
    port, controller_port = free_ports(2)
    env = {key: value for key, value in os.environ.items() if not key.startswith("XP_")}
    if "XP_KAFKA_LIB_DIR" in os.environ:
        env["XP_KAFKA_LIB_DIR"] = os.environ["XP_KAFKA_LIB_DIR"]
    env.update(
        XP_HOME=str(tmp_path / "xp"),
        XP_KAFKA_PORT=str(port),
        XP_KAFKA_CONTROLLER_PORT=str(controller_port),
        XP_KAFKA_STOP_TIMEOUT="20",
    )
    return env


@pytest.fixture
def xp(stack_env: dict[str, str]) -> Iterator[Xp]:
    """Run `xp …` in ``stack_env``; whatever happens, `xp stack down` at the end."""
    command = [str(XP)] if XP.exists() else [sys.executable, "-m", "xpstream.cli"]

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env or stack_env, capture_output=True, text=True, timeout=120
        )

    yield run
    run("stack", "down")


def status(xp: Xp) -> dict[str, dict[str, object]]:
    result = xp("stack", "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    report: dict[str, dict[str, object]] = json.loads(result.stdout)
    return report


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_topics_created(bootstrap: str, home: Path, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    from xpcore.kafka.credentials import load_local_credentials

    credentials = load_local_credentials(home / "secrets" / "kafka")
    assert credentials is not None
    admin = AdminClient({"bootstrap.servers": bootstrap, **credentials.client_config("admin")})
    topics = admin.list_topics(timeout=10).topics
    for name in ("xp.registry", "xp.exposures", "xp.events", "xp.dead-letters", "xp.alerts"):
        assert len(topics[name].partitions) == partitions, name
    resource = ConfigResource(ResourceType.TOPIC, "xp.registry")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"


def assert_secured(bootstrap: str, home: Path) -> None:
    """Issue #13 item 5: no anonymous access; secrets readable by the owner only."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    for path in (home / "secrets" / "kafka" / "credentials.json", home / "kafka" / "server.properties"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert (home / "secrets" / "registry-signing.keys").stat().st_mode & 0o077 == 0
    assert not (home / "kafka" / "format.args").exists()
    anonymous = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=3)


def test_up_status_down_twice_in_a_row(xp: Xp, stack_env: dict[str, str]) -> None:
    stack_env["XP_TOPIC_PARTITIONS"] = "3"
    bootstrap = f"127.0.0.1:{stack_env['XP_KAFKA_PORT']}"
    for round_ in range(2):
        up = xp("stack", "up")
        assert up.returncode == 0, up.stderr
        assert bootstrap in up.stdout
        if round_ == 0:
            assert "created topics" in up.stdout
        again = xp("stack", "up", "--format", "json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["already_running"] is True

        if round_ == 0:
            assert_topics_created(bootstrap, Path(stack_env["XP_HOME"]), partitions=3)
            assert_secured(bootstrap, Path(stack_env["XP_HOME"]))

        report = status(xp)
        assert report["kafka"]["bootstrap"] == bootstrap
        assert report["kafka"]["running"] is True
        assert report["kafka"]["serving"] is True
        assert report["warehouse"]["kind"] == "chdb"
        assert report["warehouse"]["location"] == str(Path(stack_env["XP_HOME"]) / "warehouse")

        down = xp("stack", "down")
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert status(xp)["kafka"]["running"] is False
        assert xp("stack", "down").returncode == 0  # idempotent

    kafka_dir = Path(stack_env["XP_HOME"]) / "kafka"
    assert (kafka_dir / "data" / "meta.properties").exists()
    assert (kafka_dir / "logs" / "server.log").stat().st_size > 0
    assert not (kafka_dir / "kafka.pid").exists()


def test_kill_9_then_up_recovers(xp: Xp, stack_env: dict[str, str]) -> None:
    assert xp("stack", "up").returncode == 0
    pid = status(xp)["kafka"]["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)

    report = status(xp)
    assert report["kafka"]["running"] is False
    assert report["kafka"]["stale_pid_file"] is True

    up = xp("stack", "up")
    assert up.returncode == 0, up.stderr
    assert "stale pid file" in up.stdout
    report = status(xp)
    assert report["kafka"]["running"] is True and report["kafka"]["serving"] is True
    assert report["kafka"]["pid"] != pid
    assert xp("stack", "down").returncode == 0


def test_port_in_use_is_one_clear_line(xp: Xp, stack_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack_env["XP_KAFKA_PORT"])))
        squatter.listen()
        result = xp("stack", "up")
    assert_one_error_line(result, f"port {stack_env['XP_KAFKA_PORT']}", "in use", "XP_KAFKA_PORT")
    assert status(xp)["kafka"]["running"] is False


def test_missing_java_and_missing_jars_are_one_clear_line(
    xp: Xp, stack_env: dict[str, str], tmp_path: Path
) -> None:
    no_java = xp("stack", "up", env={**stack_env, "XP_KAFKA_JAVA": str(tmp_path / "no-java")})
    assert_one_error_line(no_java, "java not found")
    no_jars = xp("stack", "up", env={**stack_env, "XP_KAFKA_LIB_DIR": str(tmp_path)})
    assert_one_error_line(no_jars, "Kafka jars not found", "make setup")


def test_broker_dying_during_start_points_at_the_log(xp: Xp, stack_env: dict[str, str]) -> None:
    # Storage formatted for another node: the broker refuses it and exits.
    data = Path(stack_env["XP_HOME"]) / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        "version=1\ncluster.id=2dvUzUoJQ4mHPoWc0Z8AtA\nnode.id=7\ndirectory.id=rxBnmiCsQmWB5zDjR1x3Kg\n"
    )

    # Formatted by an older xp, without SASL credentials: told what to do, nothing started.
    assert_one_error_line(xp("stack", "up"), "formatted before the broker required SASL")
    from xpcore.kafka.credentials import LocalCredentials

    LocalCredentials.generate("127.0.0.1:1").save(Path(stack_env["XP_HOME"]) / "secrets" / "kafka")

    result = xp("stack", "up")
    assert_one_error_line(result, "exited during start", "Stored node id 7", "server.log")
    assert status(xp)["kafka"]["running"] is False
