"""Kafka and ClickHouse settings are checked at start: one line naming the setting, exit 2 (issue #21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xpcore.config import CoreSettings, KafkaSettings, WarehouseSettings, load_settings
from xpcore.errors import ConfigError
from xpcore.warehouse.clickhouse.adapter import client_arguments, unreachable_reason


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"XP_KAFKA_SECURITY_PROTOCOL": "SASL-SSL"}, "XP_KAFKA_SECURITY_PROTOCOL: 'SASL-SSL' is not one of"),
        ({"XP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "XP_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-1' is not one of"),
        (
            {"XP_KAFKA_SSL_CA_LOCATION": "/nowhere/ca.pem"},
            "XP_KAFKA_SSL_CA_LOCATION: no such file: /nowhere/ca.pem",
        ),
        ({"XP_KAFKA_SSL_KEY_LOCATION": "/"}, "XP_KAFKA_SSL_KEY_LOCATION: no such file: /"),
        (
            {"XP_CLICKHOUSE_URL": "clickhouse.example.com:8123"},
            "XP_CLICKHOUSE_URL: must look like http(s)://host:port",
        ),
        ({"XP_CLICKHOUSE_URL": "https://ch.example.com:99999"}, "XP_CLICKHOUSE_URL: invalid port"),
        ({"XP_CLICKHOUSE_CA_CERT": "/nowhere/ca.pem"}, "XP_CLICKHOUSE_CA_CERT: no such file"),
    ],
)
def test_a_bad_connection_setting_is_one_line_naming_it(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(CoreSettings)
    assert str(caught.value).startswith(f"invalid setting {message}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_command_line_exits_2_with_that_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "XP_HOME": str(tmp_path), "XP_KAFKA_SECURITY_PROTOCOL": "SASL-SSL"}
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "experiments", "list"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting XP_KAFKA_SECURITY_PROTOCOL: 'SASL-SSL' is not one of PLAINTEXT, SSL, "
        "SASL_PLAINTEXT, SASL_SSL"
    ]


def test_good_values_are_normalised_and_files_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = KafkaSettings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-512",
        kafka_ssl_ca_location=str(ca),
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert KafkaSettings(kafka_ssl_ca_location="probe").kafka_ssl_ca_location == "probe"


def test_the_local_stack_is_suggested_only_when_it_is_what_is_configured() -> None:
    assert "xp stack up" in KafkaSettings(kafka_bootstrap="127.0.0.1:19092").unreachable_hint()
    assert "xp stack up" in KafkaSettings(kafka_bootstrap="localhost:9092,127.0.0.1:9093").unreachable_hint()
    remote = KafkaSettings(kafka_bootstrap="b1.kafka.example.com:9096", kafka_security_protocol="SASL_SSL")
    assert "xp stack up" not in remote.unreachable_hint() and "(SASL_SSL)" in remote.unreachable_hint()


def test_clickhouse_tls_settings_reach_the_client(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("pem")
    settings = WarehouseSettings(
        clickhouse_url="https://ch.example.com",
        clickhouse_ca_cert=files["ca"],
        clickhouse_client_cert=files["cert"],
        clickhouse_client_key=files["key"],
    )
    arguments = client_arguments(settings)
    assert arguments["port"] == 8443 and arguments["secure"] is True and arguments["verify"] is True
    assert (arguments["ca_cert"], arguments["client_cert"], arguments["client_cert_key"]) == tuple(
        str(files[n]) for n in ("ca", "cert", "key")
    )
    assert client_arguments(settings.model_copy(update={"clickhouse_verify": False}))["verify"] is False
    plain = client_arguments(
        WarehouseSettings(clickhouse_url="http://ch:8123", clickhouse_ca_cert=files["ca"])
    )
    assert "ca_cert" not in plain and "verify" not in plain  # plain http: no TLS keywords


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /?query_id=x "
            "(Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a "
            'new connection: [Errno 111] Connection refused"))',
            "Connection refused",
        ),
        ("... NameResolutionError(... [Errno -2] Name or service not known)", "Name or service not known"),
        ("HTTPSConnectionPool(host='ch', port=8443): Read timed out. (read timeout=10)", "Read timed out"),
    ],
)
def test_an_unreachable_server_is_told_by_its_cause(message: str, cause: str) -> None:
    assert unreachable_reason(message) == f"{cause} (check XP_CLICKHOUSE_URL and that the server is up)"
