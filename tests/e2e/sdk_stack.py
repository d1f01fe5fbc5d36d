"""The stack the SDK samples run against (tests/e2e/test_sdk_samples.py): one `xp up` per module.

A topic prefix of its own on the session's broker, `examples/experiments.yaml` published to its registry
with `xp experiments apply`, then `xp up` with the service and the stream worker (no scheduler, no
dashboard: the samples need neither) following that registry, a client key set, and a store in a
temporary XP_HOME. The samples talk to the service over HTTP like any client; the test reads the store
through `xp up`'s warehouse API (the owner token from the store's lock file) and compares assignments
with `xp assign eval` on the same experiments file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.kafka import KafkaBroker, free_ports, read_topics_to_end
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings
from xpcore.warehouse.remote import RemoteWarehouse

__all__ = ["EXPERIMENTS", "FEATURES", "SAMPLES", "SdkStack", "sdk_stack"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "examples" / "sdk"
EXPERIMENTS = ROOT / "examples" / "experiments.yaml"
FEATURES = ("checkout-button-color", "pricing-page-layout")
"""The features every sample evaluates: a 3-way split everyone is in, and a 50% US/CA-only split."""
CLIENT_KEY = "ck_sdk_samples"


def xp(env: dict[str, str], *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=input_text,
    )


@dataclass
class SdkStack:
    """A running `xp up` the samples point at."""

    service_url: str
    client_key: str
    warehouse: RemoteWarehouse
    kafka: KafkaSettings
    stream_group: str
    env: dict[str, str]
    log: Path

    def sql(self, query: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read-only query on the store `xp up` owns (through its warehouse API)."""
        rows: list[dict[str, Any]] = self.warehouse.query_arrow(query, parameters).to_pylist()
        return rows

    def assign_eval(self, feature: str, units: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`xp assign eval --features examples/experiments.yaml --key FEATURE` for each unit, in order."""
        lines = "\n".join(json.dumps(unit) for unit in units)
        path = self.log.parent / f"units-{feature}.jsonl"
        path.write_text(lines + "\n")
        result = xp(
            self.env,
            "assign",
            "eval",
            "--features",
            str(EXPERIMENTS),
            "--key",
            feature,
            "--attributes-file",
            str(path),
            "--format",
            "json",
        )
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def records_sent(self, topic: str, unit_prefix: str, at_least: int) -> list[dict[str, Any]]:
        """The records of ``topic`` keyed by a unit of ``unit_prefix``, read to the topic's end offsets
        once there are at least ``at_least`` (a record sent twice shows twice)."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            records = read_topics_to_end(self.kafka, [topic])
            found[:] = [json.loads(r.value()) for r in records if r.key().decode().startswith(unit_prefix)]
            return len(found) >= at_least

        wait_until(
            enough,
            timeout=60,
            interval=0.3,
            message=lambda: f"{at_least} records of {unit_prefix}* on {topic} (found {len(found)})",
        )
        return found

    def wait_until_loaded(self, topics: Sequence[str]) -> None:
        """Until the stream worker has committed every record the topics hold now: it commits after
        the warehouse insert, so what the warehouse holds of them afterwards is final."""
        from confluent_kafka import TopicPartition

        from xpcore.kafka.clients import make_consumer

        consumer = make_consumer(self.kafka, self.stream_group)
        try:
            names = [self.kafka.topic(topic) for topic in topics]
            ends = {
                (name, p): consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10, cached=False)[
                    1
                ]
                for name in names
                for p in consumer.list_topics(name, timeout=10).topics[name].partitions
            }
            wanted = [TopicPartition(name, p) for (name, p), end in ends.items() if end > 0]

            def committed() -> bool:
                offsets = consumer.committed(wanted, timeout=10)
                return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in offsets)

            wait_until(
                committed,
                timeout=90,
                interval=0.5,
                message=lambda: (
                    f"the stream worker to commit {ends}; xp up log:\n{self.log.read_text()[-3000:]}"
                ),
            )
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def sdk_stack(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkStack]:
    from xpcore.kafka.admin import admin_client
    from xpcore.kafka.topics import ensure_topics, topic_specs
    from xpcore.warehouse.chdb import read_owner

    tmp = tmp_path_factory.mktemp("sdk-stack")
    kafka = kafka_broker.settings(topic_prefix=f"sdk-samples-{os.getpid()}.")
    ensure_topics(kafka)
    home = tmp / "home"
    up_port, service_port, dashboard_port = free_ports(3)
    env = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka.topic_prefix,
        "XP_STREAM_GROUP_ID": f"{kafka.topic_prefix}stream",
        "XP_UP_PORT": str(up_port),
        "XP_SERVICE_PORT": str(service_port),
        "XP_DASHBOARD_PORT": str(dashboard_port),
        "XP_UP_COMPONENTS": "service,stream",
        "XP_SERVICE_CLIENT_KEYS": CLIENT_KEY,
        "XP_STORE_WAIT_SECONDS": "10",
    }
    for name in ("XP_CLICKHOUSE_URL", "XP_API_URL", "XP_SERVICE_FEATURES_FILE", "XP_STREAM_REGISTRY_FILE"):
        env.pop(name, None)
    applied = xp(env, "experiments", "apply", str(EXPERIMENTS))
    assert applied.returncode == 0, applied.stderr
    log = tmp / "up.log"
    with log.open("w") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "xpstream.cli", "up"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{up_port}"
    try:

        def healthy() -> bool:
            assert up.poll() is None, log.read_text()[-4000:]
            try:
                answer = httpx.get(f"{base}/healthz", timeout=5)
            except httpx.TransportError:
                return False
            return answer.status_code == 200

        wait_until(
            healthy, timeout=120, interval=0.5, message=lambda: f"xp up healthy:\n{log.read_text()[-4000:]}"
        )
        owner = read_owner(home / "warehouse")
        assert owner is not None and owner.api_token
        warehouse = RemoteWarehouse(base, token=owner.api_token)
        yield SdkStack(
            service_url=f"http://127.0.0.1:{service_port}",
            client_key=CLIENT_KEY,
            warehouse=warehouse,
            kafka=kafka,
            stream_group=env["XP_STREAM_GROUP_ID"],
            env=env,
            log=log,
        )
        warehouse.close()
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=45)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(timeout=30)
        admin_client(kafka).delete_topics(list(topic_specs(kafka)), operation_timeout=10)
