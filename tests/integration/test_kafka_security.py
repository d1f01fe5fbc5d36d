"""Issue #13 item 5 on a real secured broker: principals and ACLs, clients configured only through
XP_KAFKA_* variables, a wrong password as one clear line, and forged registry records refused and
reported even when a principal allowed to write the topic produced them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assignment.authoring import load_registry_file
from assignment.registry_changes import override_change, plan_changes
from assignment.registry_topic import RegistryFollower, publish_changes, read_registry
from schemas import RegistryRecord
from schemas.codec import RecordCodec
from tests.fixtures.kafka import KafkaBroker
from xpcore.config import KafkaSettings
from xpcore.kafka.clients import make_consumer, make_producer
from xpcore.registry_signing import SIGNATURE_HEADER, KeyRing, new_key, refusals

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "experiments.yaml"


def produce(settings: KafkaSettings, topic: str, key: bytes, value: bytes, **kwargs: object) -> object:
    """Produce one record and return its delivery error (None when the broker took it)."""
    errors: list[object] = []
    # not idempotent: a principal that may write no topic at all would not even get a producer id
    producer = make_producer(settings, **{"message.timeout.ms": 10_000, "enable.idempotence": False})
    producer.produce(topic, key=key, value=value, on_delivery=lambda e, m: errors.append(e), **kwargs)
    assert producer.flush(20) == 0
    return errors[0]


def test_only_the_registry_principal_writes_the_registry(
    kafka_broker: KafkaBroker, kafka_settings: KafkaSettings
) -> None:
    prefix = kafka_settings.topic_prefix
    registry_topic = kafka_settings.topic("xp.registry")
    for role in ("worker", "service", "loadgen", "quality", "reader"):
        error = produce(kafka_broker.settings(topic_prefix=prefix, role=role), registry_topic, b"k", b"{}")
        assert error is not None and "TOPIC_AUTHORIZATION_FAILED" in str(error), role
    assert (
        produce(kafka_broker.settings(topic_prefix=prefix, role="registry"), registry_topic, b"k", b"{}")
        is None
    )
    # and the worker may still do its job: write dead letters
    dead_letters = kafka_settings.topic("xp.dead-letters")
    assert (
        produce(kafka_broker.settings(topic_prefix=prefix, role="worker"), dead_letters, b"k", b"{}") is None
    )


def test_a_client_configured_only_by_env_produces_and_consumes(
    kafka_broker: KafkaBroker, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = kafka_broker.credentials().passwords
    monkeypatch.delenv("XP_KAFKA_CREDENTIALS_DIR", raising=False)
    monkeypatch.setenv("XP_KAFKA_BOOTSTRAP", kafka_settings.kafka_bootstrap)
    monkeypatch.setenv("XP_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("XP_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("XP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("XP_KAFKA_SASL_USERNAME", "loadgen")
    monkeypatch.setenv("XP_KAFKA_SASL_PASSWORD", passwords["loadgen"])
    producer_settings = KafkaSettings()
    assert producer_settings.confluent_config("worker")["sasl.username"] == "loadgen"  # explicit wins
    events = producer_settings.topic("xp.events")
    marker = uuid.uuid4().hex.encode()
    assert produce(producer_settings, events, b"u1", marker) is None

    monkeypatch.setenv("XP_KAFKA_SASL_USERNAME", "worker")
    monkeypatch.setenv("XP_KAFKA_SASL_PASSWORD", passwords["worker"])
    consumer = make_consumer(KafkaSettings(), f"xp-env-test-{uuid.uuid4().hex[:6]}")
    try:
        consumer.subscribe([events])
        seen: list[bytes] = []
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message.value())
            if marker in seen:
                break
        assert marker in seen
    finally:
        consumer.close()


def test_a_wrong_password_is_one_clear_error_line(kafka_settings: KafkaSettings) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("XP_")}
    env.update(
        XP_KAFKA_BOOTSTRAP=kafka_settings.kafka_bootstrap,
        XP_TOPIC_PREFIX=kafka_settings.topic_prefix,
        XP_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        XP_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        XP_KAFKA_SASL_USERNAME="reader",
        XP_KAFKA_SASL_PASSWORD="not-the-password",
    )
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "experiments", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "refused the credentials of 'reader'" in lines[0]
    assert "XP_KAFKA_SASL_PASSWORD" in lines[0] and "not-the-password" not in lines[0]


def test_a_forged_registry_record_is_refused_and_reported(
    kafka_broker: KafkaBroker, kafka_settings: KafkaSettings
) -> None:
    now = datetime.now(UTC)
    publish_changes(
        kafka_settings,
        plan_changes(read_registry(kafka_settings), load_registry_file(EXAMPLE), actor="t", now=now),
    )
    snapshot = read_registry(kafka_settings)
    assert "checkout-button" in snapshot.experiments  # signed records are applied

    codec = RecordCodec(RegistryRecord, max_record_bytes=kafka_settings.max_record_bytes)
    topic = kafka_settings.topic("xp.registry")
    # The admin is a super user: as if the ACLs were misconfigured, the broker takes anything from it.
    admin = kafka_broker.settings(topic_prefix=kafka_settings.topic_prefix, role="admin")
    forged = {
        "unsigned": override_change(snapshot, "checkout-button", "victim-1", "green", actor="ceo", now=now),
        "foreign key": override_change(
            snapshot, "checkout-button", "victim-2", "green", actor="ceo", now=now
        ),
    }
    before = refusals().total()
    for label, record in forged.items():
        key, value = record.key.encode(), codec.encode(record)
        headers = (
            [] if label == "unsigned" else [(SIGNATURE_HEADER, KeyRing.of([new_key()]).sign(key, value))]
        )
        assert produce(admin, topic, key, value, headers=headers) is None

    after = read_registry(kafka_settings)
    assert after.override_for("checkout-button", "victim-1", now) is None
    assert after.override_for("checkout-button", "victim-2", now) is None
    assert after.experiments.keys() == snapshot.experiments.keys()
    assert refusals().total() - before == 2
    reasons = {r.key: r.reason for r in refusals().latest}
    assert reasons["override:checkout-button:victim-1"] == "unsigned"
    assert reasons["override:checkout-button:victim-2"] == "unknown_signing_key"

    with RegistryFollower(kafka_settings) as follower:
        assert follower.loaded
        assert follower.snapshot.override_for("checkout-button", "victim-1", now) is None
        assert refusals().total() - before == 2  # each record reported once per process
        assert follower.refused["refused"] == refusals().total()

    # a signed override still goes through
    publish_changes(
        kafka_settings, [override_change(after, "checkout-button", "qa-1", "green", actor="qa", now=now)]
    )
    assert read_registry(kafka_settings).override_for("checkout-button", "qa-1", now) is not None

    listed = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "experiments", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
            "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        },
        cwd=ROOT,
    )
    assert listed.returncode == 0, listed.stderr
    assert "warning: 2 registry record(s) refused" in listed.stderr
