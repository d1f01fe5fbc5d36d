"""docs/production.md's worked example, run: its env blocks against a broker with a SASL_SSL listener.

The blocks are read from the page itself, so the page cannot drift from what works: only host names,
ports, secrets and file paths are replaced by those of a local broker started with XP_KAFKA_TLS_PORT
(SCRAM over TLS, a client certificate required). `xp experiments apply`, `xp loadgen` and
`xp stream run` then run as three principals; every record arrives once (issue #21).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import kafka as kafka_fixtures
from xpcore.config import StackSettings, WarehouseSettings
from xpcore.warehouse.clickhouse.adapter import client_arguments

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "production.md"
BLOCK = re.compile(r"<!-- production-env: (\w+) -->\n```sh\n(.*?)```", re.DOTALL)


def env_blocks() -> dict[str, dict[str, str]]:
    blocks: dict[str, dict[str, str]] = {}
    for name, body in BLOCK.findall(PAGE.read_text()):
        pairs = [
            line.split("=", 1) for line in body.splitlines() if line.strip() and not line.startswith("#")
        ]
        blocks[name] = {key: value for key, value in pairs}
    return blocks


def test_every_variable_of_the_page_is_a_setting() -> None:
    blocks = env_blocks()
    assert set(blocks) == {"common", "worker", "registry", "producer"}
    documented = (ROOT / "docs" / "configuration.md").read_text()
    for name, block in blocks.items():
        for key in block:
            assert f"`{key}`" in documented, f"{name}: {key} is not a setting in docs/configuration.md"


@pytest.fixture
def tls_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackSettings]:
    with kafka_fixtures.own_broker(
        tmp_path / "broker-home", monkeypatch, tls=True, topic_partitions=2, kafka_stop_timeout=15.0
    ) as stack:
        yield stack


def _local(
    value: str, key: str, broker: StackSettings, passwords: dict[str, str], users: dict[str, str]
) -> str:
    """The page's value with this machine's host, port, secret or file in place of the example's."""
    tls = broker.home / "secrets" / "tls"
    local = {
        "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.kafka_tls_port}",
        "XP_KAFKA_SSL_CA_LOCATION": str(tls / "ca.pem"),
        "XP_KAFKA_SSL_CERTIFICATE_LOCATION": str(tls / "client.pem"),
        "XP_KAFKA_SSL_KEY_LOCATION": str(tls / "client.key"),
        "XP_REGISTRY_SIGNING_KEY_FILE": str(broker.home / "secrets" / "registry-signing.keys"),
        "XP_CLICKHOUSE_CA_CERT": str(tls / "ca.pem"),  # a PEM file that exists; no server to verify here
    }
    if key == "XP_KAFKA_SASL_USERNAME":
        users["role"] = value.removeprefix("xp-")  # the page's xp-worker is the local broker's worker
        return users["role"]
    if key == "XP_KAFKA_SASL_PASSWORD":
        return passwords[users["role"]]
    return local.get(key, value)


def _env(broker: StackSettings, tmp_path: Path, *names: str) -> dict[str, str]:
    blocks = env_blocks()
    passwords = json.loads((broker.home / "secrets" / "kafka" / "credentials.json").read_text())["passwords"]
    users: dict[str, str] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    for name in ("common", *names):
        for key, value in blocks[name].items():
            env[key] = _local(value, key, broker, passwords, users)
    env["XP_HOME"] = str(tmp_path / "xp-home")
    return env


def _xp(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_worked_example_runs_over_sasl_ssl_with_a_client_certificate(
    tls_broker: StackSettings, tmp_path: Path
) -> None:
    registry = _env(tls_broker, tmp_path, "registry")
    producer = _env(tls_broker, tmp_path, "producer")
    worker = _env(tls_broker, tmp_path, "worker")
    assert (
        registry["XP_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and worker["XP_KAFKA_SASL_USERNAME"] == "worker"
    )

    # ClickHouse over TLS: no server runs here, so the settings are checked for what the client gets,
    # and the commands below use the embedded store (the only line the test drops).
    tls = client_arguments(WarehouseSettings(**_settings_of(worker)))
    assert (tls["interface"], tls["port"], tls["verify"], tls["username"]) == (
        "https",
        8443,
        True,
        "xp_writer",
    )
    assert tls["ca_cert"] == worker["XP_CLICKHOUSE_CA_CERT"]
    for env in (registry, producer, worker):
        env.pop("XP_CLICKHOUSE_URL")

    applied = _xp(registry, "experiments", "apply", str(ROOT / "examples" / "experiments.yaml"))
    assert applied.returncode == 0, applied.stderr
    made = _xp(producer, "loadgen", "--users", "300", "--seed", "5", "--format", "json")
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    assert report["exposures"] > 0 and report["delivery_failures"] == 0
    ran = _xp(worker, "stream", "run", "--until-idle", "5")
    assert ran.returncode == 0, ran.stderr
    counted = _xp(
        worker,
        "sql",
        "SELECT (SELECT count() FROM xp.exposures) AS x, (SELECT count() FROM xp.events) AS e",
        "--format",
        "json",
    )
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout) == [{"x": report["exposures"], "e": report["events"]}]

    # least privilege holds over TLS too: the producer's principal may read the registry, not change it
    as_producer = {
        **registry,
        **{k: producer[k] for k in ("XP_KAFKA_SASL_USERNAME", "XP_KAFKA_SASL_PASSWORD")},
    }
    experiment = json.loads(_xp(registry, "experiments", "list", "--format", "json").stdout)[0]["key"]
    refused = _xp(as_producer, "experiments", "override", experiment, "qa-1", "0", "--timeout", "10")
    assert refused.returncode != 0 and "xp.registry" in refused.stderr, refused.stderr
    # and a principal that cannot see a topic is told who must create it (was: a bare authorization error)
    unseen = _xp(registry, "loadgen", "--users", "10", "--format", "json")
    assert unseen.returncode == 2, unseen.stderr
    assert "may not create it: create the topics once as an admin" in unseen.stderr


def test_without_a_client_certificate_the_listener_refuses(tls_broker: StackSettings, tmp_path: Path) -> None:
    env = _env(tls_broker, tmp_path, "registry")
    for key in ("XP_KAFKA_SSL_CERTIFICATE_LOCATION", "XP_KAFKA_SSL_KEY_LOCATION", "XP_CLICKHOUSE_URL"):
        env.pop(key)
    result = _xp(env, "experiments", "list", "--timeout", "5", timeout=60)
    assert result.returncode != 0 and "cannot reach Kafka" in result.stderr, result.stderr


def _settings_of(env: dict[str, str]) -> dict[str, str]:
    """The XP_CLICKHOUSE_* variables as WarehouseSettings keywords."""
    return {key[3:].lower(): value for key, value in env.items() if key.startswith("XP_CLICKHOUSE_")}
