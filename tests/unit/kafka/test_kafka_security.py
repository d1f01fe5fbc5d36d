"""Pure parts of the secured Kafka setup (issue #13 item 5): the ACL table, local credentials, registry
record signatures, and the rate limit on librdkafka's repeated log lines."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from xpcore.config import KafkaSettings, StackSettings
from xpcore.errors import ConfigError
from xpcore.kafka.client_log import RateLimitedLog
from xpcore.kafka.credentials import LocalCredentials, load_local_credentials
from xpcore.kafka.principals import ROLES, acl_entries
from xpcore.registry_signing import KeyRing, RefusalLog, RefusedRecord, load_keyring, new_key, parse_keys

# the ACL table


def _topic(prefix: str):  # type: ignore[no-untyped-def]
    return lambda name: f"{prefix}{name}"


def test_only_the_registry_principal_may_write_the_registry() -> None:
    entries = acl_entries(_topic("p."), "p.")
    writers = {e.principal for e in entries if e.name == "p.xp.registry" and e.operation == "WRITE"}
    assert writers == {"User:registry"}
    assert all(e.pattern == "LITERAL" for e in entries if e.resource_type == "TOPIC")
    assert all(e.name.startswith("p.") for e in entries if e.resource_type == "TOPIC")


def test_each_role_gets_only_its_topics() -> None:
    grants: dict[str, set[tuple[str, str]]] = {}
    for entry in acl_entries(_topic(""), ""):
        if entry.resource_type == "TOPIC":
            grants.setdefault(entry.principal.removeprefix("User:"), set()).add((entry.name, entry.operation))
    assert grants["worker"] == {
        ("xp.exposures", "READ"),
        ("xp.events", "READ"),
        ("xp.dead-letters", "READ"),  # the collector's dead letters (decision 0036)
        ("xp.dead-letters", "WRITE"),
        ("xp.registry", "READ"),
        ("xp.flink.exposures", "READ"),  # what the Flink job hands off (--runner flink)
        ("xp.flink.events", "READ"),
        ("xp.flink.attributions", "READ"),  # the job's attribution rows, checked (decision 0102)
    }
    assert grants["flink"] == {
        ("xp.exposures", "READ"),
        ("xp.events", "READ"),
        ("xp.flink.exposures", "WRITE"),
        ("xp.flink.events", "WRITE"),
        ("xp.flink.attributions", "WRITE"),
    }
    assert grants["quality"] == {("xp.alerts", "WRITE"), ("xp.registry", "READ")}
    assert grants["reader"] == {("xp.registry", "READ")}
    assert ("xp.exposures", "WRITE") in grants["service"]
    assert "admin" not in grants  # a super user: no ACLs needed
    assert set(grants) | {"admin"} == set(ROLES)


# local credentials


def test_generated_credentials_are_private_and_per_role(tmp_path: Path) -> None:
    credentials = LocalCredentials.generate("127.0.0.1:1234")
    path = credentials.save(tmp_path / "secrets" / "kafka")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_local_credentials(path.parent)
    assert loaded == credentials
    assert len(set(credentials.passwords.values())) == len(ROLES)
    assert credentials.client_config("worker")["sasl.username"] == "worker"
    with pytest.raises(ConfigError, match="no local Kafka credentials for role 'nobody'"):
        credentials.client_config("nobody")


def test_local_credentials_apply_only_to_their_broker_and_never_over_explicit_ones(tmp_path: Path) -> None:
    LocalCredentials.generate("127.0.0.1:1234").save(tmp_path / "home" / "secrets" / "kafka")
    local = StackSettings(home=tmp_path / "home", kafka_port=1234)
    config = local.confluent_config("service")
    assert (config["security.protocol"], config["sasl.username"]) == ("SASL_PLAINTEXT", "service")
    assert local.confluent_config()["sasl.username"] == "admin"
    other = StackSettings(home=tmp_path / "home", kafka_bootstrap="kafka.prod:9093")
    assert "sasl.username" not in other.confluent_config("service")
    explicit = StackSettings(
        home=tmp_path / "home",
        kafka_port=1234,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc-xp",
        kafka_sasl_password=SecretStr("pw"),
    )
    config = explicit.confluent_config("worker")
    assert (config["security.protocol"], config["sasl.username"], config["sasl.password"]) == (
        "SASL_SSL",
        "svc-xp",
        "pw",
    )


# registry signatures


def test_signature_binds_key_and_value_and_names_its_key() -> None:
    key = new_key()
    ring = KeyRing.of([key])
    signature = ring.sign(b"override:checkout:u1", b'{"v":1}')
    assert signature.decode().startswith(f"v1:{key.key_id}:")
    assert ring.verify(b"override:checkout:u1", b'{"v":1}', signature) is None
    assert ring.verify(b"override:checkout:u2", b'{"v":1}', signature) == "bad_signature"
    assert ring.verify(b"override:checkout:u1", b'{"v":2}', signature) == "bad_signature"
    assert ring.verify(b"k", b"v", None) == "unsigned"
    assert ring.verify(b"k", b"v", b"garbage") == "malformed_signature"
    assert KeyRing.of([new_key()]).verify(b"override:checkout:u1", b'{"v":1}', signature) == (
        "unknown_signing_key"
    )


def test_rotation_new_key_signs_old_key_still_verifies(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    signed_before = KeyRing.of([old]).sign(b"k", b"v")
    rotated = KeyRing.of([new, old])
    assert rotated.signing == new
    assert rotated.verify(b"k", b"v", signed_before) is None
    assert rotated.verify(b"k", b"v", rotated.sign(b"k", b"v")) is None


def test_keys_from_env_file_or_generated_0600(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path / "home")
    assert load_keyring(settings).signing is None  # nothing generated on read
    created = load_keyring(settings, create=True)
    path = tmp_path / "home" / "secrets" / "registry-signing.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings) == created
    key = new_key()
    import base64

    text = f"{key.key_id}:{base64.urlsafe_b64encode(key.secret).decode().rstrip('=')}"
    from_env = load_keyring(KafkaSettings(registry_signing_key=SecretStr(text)))
    assert from_env.signing == key
    with pytest.raises(ConfigError, match="at least 32 random bytes"):
        parse_keys("k1:c2hvcnQ", "XP_REGISTRY_SIGNING_KEY")
    with pytest.raises(ConfigError, match="no registry signing key"):
        KeyRing.of([]).sign(b"k", b"v")


def test_a_refused_record_is_reported_once() -> None:
    log = RefusalLog()
    record = RefusedRecord("xp.registry", 0, 7, "override:checkout:u1", "unsigned")
    assert log.report(record) is True
    assert log.report(record) is False
    assert log.summary()["refused"] == 1


# librdkafka log rate limit


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_broker_errors_are_logged_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    limited = RateLimitedLog(logging.getLogger("test.librdkafka"), window=30.0, clock=clock)
    caplog.set_level(logging.INFO, "test.librdkafka")
    for attempt in range(224):  # 224 reconnect failures in 10 s, as in the issue
        clock.now = attempt * 10 / 224
        limited.log(
            logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", f"Connect failed (after {attempt}ms)"
        )
    limited.log(logging.ERROR, "%s", "another error")
    clock.now = 31.0
    limited.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed (after 5ms)")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "repeated 223 more times in the last 30s" in messages[2]
