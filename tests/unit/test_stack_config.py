"""Pure parts of the local stack: server.properties, pid-file staleness, error lines, topic specs."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from xpcore.config import KafkaSettings, StackSettings
from xpcore.kafka.topics import ALL_TOPICS, DEAD_LETTERS, EVENTS, EXPOSURES, REGISTRY, topic_specs
from xpstream.stack.layout import (
    BrokerConfig,
    KafkaLayout,
    broker_command,
    format_arguments,
    format_command,
    is_broker_command,
    new_cluster_id,
    render_server_properties,
)
from xpstream.stack.process import (
    PidStatus,
    classify_pid,
    last_error_line,
    port_is_free,
    process_argv,
    read_new_lines,
)


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def layout(tmp_path: Path) -> KafkaLayout:
    lib = tmp_path / "deploy" / "kafka" / "lib"
    lib.mkdir(parents=True)
    return KafkaLayout.create(tmp_path / "home", lib)


# server.properties


PASSWORD = "s3cret-Pass_word"


def broker_config(port: int, controller_port: int, data: Path, partitions: int = 4) -> BrokerConfig:
    return BrokerConfig(port, controller_port, data, partitions, admin_password=PASSWORD)


def test_server_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = parse_properties(render_server_properties(broker_config(29092, 29093, tmp_path / "data", 6)))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:29093"
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "6"


def test_server_properties_require_sasl_and_acls_on_every_listener(tmp_path: Path) -> None:
    """Issue #13 item 5: no PLAINTEXT listener, an authorizer denying what no ACL allows, one super user."""
    props = parse_properties(render_server_properties(broker_config(1, 2, tmp_path)))
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert f'password="{PASSWORD}"' in props["listener.name.controller.plain.sasl.jaas.config"]
    with pytest.raises(ValueError, match="password"):
        render_server_properties(BrokerConfig(1, 2, tmp_path))
    with pytest.raises(ValueError, match="password"):
        render_server_properties(BrokerConfig(1, 2, tmp_path, admin_password='x" user_evil="y'))


def test_server_properties_fit_one_node(tmp_path: Path) -> None:
    props = parse_properties(render_server_properties(broker_config(1, 2, tmp_path)))
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert int(props["broker.session.timeout.ms"]) > int(props["broker.heartbeat.interval.ms"])


def test_every_property_line_is_key_equals_value(tmp_path: Path) -> None:
    text = render_server_properties(broker_config(1, 2, tmp_path))
    for line in text.splitlines():
        assert not line or line.startswith("#") or re.fullmatch(r"[a-z0-9._-]+=\S(.*\S)?", line), line


def test_cluster_id_is_16_bytes_urlsafe_base64() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        # One in 64 random ids would start with "-", which the storage tool parses as an option.
        assert not cluster_id.startswith("-")


def test_commands_run_the_jars_with_our_files(layout: KafkaLayout) -> None:
    broker = broker_command("/usr/bin/java", layout, "768m")
    assert broker[0] == "/usr/bin/java"
    assert "-Xmx768m" in broker
    assert broker[broker.index("-cp") + 1] == f"{layout.lib_dir}/*"
    assert broker[-2:] == ["kafka.Kafka", str(layout.properties_file)]
    assert f"-Dkafka.logs.dir={layout.logs_dir}" in broker
    # the admin's SCRAM password goes through a 0600 argument file, never onto the command line
    assert format_command("java", layout, "abc") == ["java", f"@{layout.format_args_file}"]
    storage = format_arguments(layout, "abc", "SCRAM-SHA-512=[name=admin,password=pw]")
    assert storage[storage.index("kafka.tools.StorageTool") :] == [
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "-t",
        "abc",
        "-c",
        str(layout.properties_file),
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=pw]",
    ]


def test_layout_keeps_everything_under_xp_home_kafka(layout: KafkaLayout) -> None:
    for path in (
        layout.data_dir,
        layout.logs_dir,
        layout.pid_file,
        layout.properties_file,
        layout.server_log,
    ):
        assert path.is_relative_to(layout.home / "kafka")
    assert layout.formatted_marker == layout.data_dir / "meta.properties"


def test_log4j_config_comes_from_beside_the_jars_else_a_fallback(layout: KafkaLayout) -> None:
    assert layout.log4j_file == layout.kafka_dir / "log4j.properties"
    (layout.lib_dir.parent / "log4j.properties").write_text("log4j.rootLogger=INFO\n")
    assert layout.log4j_file == layout.lib_dir.parent / "log4j.properties"


def test_repository_ships_a_log4j_config_writing_to_the_logs_dir() -> None:
    from xpstream.stack.layout import default_lib_dir

    text = (default_lib_dir().parent / "log4j.properties").read_text()
    assert "${kafka.logs.dir}/server.log" in text


# settings


def test_stack_bootstrap_follows_kafka_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("XP_KAFKA_PORT", "29999")
    assert StackSettings().kafka_bootstrap == "127.0.0.1:29999"
    monkeypatch.setenv("XP_KAFKA_BOOTSTRAP", "broker.example:9092")
    assert StackSettings().kafka_bootstrap == "broker.example:9092"


def test_confluent_producer_uses_the_java_partitioner() -> None:
    config = KafkaSettings(kafka_bootstrap="127.0.0.1:1").confluent_producer_config()
    assert config["partitioner"] == "murmur2_random"
    assert config["bootstrap.servers"] == "127.0.0.1:1"


# pid file


def test_pid_file_absent() -> None:
    assert classify_pid(None, lambda pid: None, lambda argv: True).status is PidStatus.ABSENT


@pytest.mark.parametrize("text", ["", "garbage", "-4", "0"])
def test_unreadable_pid_file_is_stale(text: str) -> None:
    state = classify_pid(text, lambda pid: ["java", "kafka.Kafka"], lambda argv: True)
    assert state.status is PidStatus.STALE


def test_pid_of_a_gone_process_is_stale() -> None:
    state = classify_pid("4242\n", lambda pid: None, lambda argv: True)
    assert (state.status, state.pid) == (PidStatus.STALE, 4242)
    assert "gone" in state.reason


def test_pid_reused_by_another_program_is_stale(layout: KafkaLayout) -> None:
    state = classify_pid(
        "77", lambda pid: ["/usr/bin/python3", "server.py"], lambda a: is_broker_command(a, layout)
    )
    assert state.status is PidStatus.STALE
    assert "not this stack's Kafka broker" in state.reason


def test_broker_of_another_xp_home_is_not_ours(layout: KafkaLayout, tmp_path: Path) -> None:
    other = KafkaLayout.create(tmp_path / "other", layout.lib_dir)
    argv = broker_command("java", other, "512m")
    assert not is_broker_command(argv, layout)
    assert is_broker_command(broker_command("java", layout, "512m"), layout)


def test_live_broker_is_running(layout: KafkaLayout) -> None:
    argv = broker_command("java", layout, "512m")
    state = classify_pid("123", lambda pid: argv, lambda a: is_broker_command(a, layout))
    assert (state.status, state.pid) == (PidStatus.RUNNING, 123)


def test_process_argv_sees_live_and_gone_processes() -> None:
    argv = process_argv(os.getpid())
    assert argv is not None and any("python" in part or "pytest" in part for part in argv)
    assert process_argv(2**22 + 12345) is None


# ports and logs


def test_port_in_use_is_detected() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)


def test_read_new_lines_reads_only_what_came_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old ERROR line\n")
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("new line\n")
    assert read_new_lines(log, offset) == ["new line"]
    assert read_new_lines(tmp_path / "missing.log", 0) == []


def test_error_line_prefers_the_exception_over_kafkas_generic_exit_line() -> None:
    lines = [
        "[2026-01-01 10:00:00,000] INFO starting (kafka.Kafka$)",
        "[2026-01-01 10:00:01,000] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)",
        "java.lang.RuntimeException: Stored node id 2 doesn't match previous node id 1",
        "\tat kafka.server.KafkaRaftServer.<init>(KafkaRaftServer.scala:60)",
        "[2026-01-01 10:00:01,100] INFO shutting down (kafka.Kafka$)",
    ]
    assert (
        last_error_line(lines)
        == "java.lang.RuntimeException: Stored node id 2 doesn't match previous node id 1"
    )


def test_error_line_of_a_jvm_that_did_not_start_is_the_reason() -> None:
    lines = [
        "Invalid maximum heap size: -Xmx5x",
        "Error: Could not create the Java Virtual Machine.",
        "Error: A fatal exception has occurred. Program will exit.",
    ]
    assert last_error_line(lines) == "Invalid maximum heap size: -Xmx5x"


def test_error_line_of_a_missing_class_is_the_cause() -> None:
    lines = [
        "Error: Could not find or load main class kafka.Kafka",
        "Caused by: java.lang.ClassNotFoundException: kafka.Kafka",
    ]
    assert last_error_line(lines) == "Caused by: java.lang.ClassNotFoundException: kafka.Kafka"


def test_no_error_line_in_a_clean_log() -> None:
    assert last_error_line(["[x] INFO fine (kafka.Kafka$)", ""]) is None


# topics


def test_design_topics_and_registry_is_compacted() -> None:
    names = [spec.name for spec in ALL_TOPICS]
    assert names == [
        "xp.registry",
        "xp.exposures",
        "xp.events",
        "xp.dead-letters",
        "xp.alerts",
        "xp.flink.exposures",  # the Flink job's hand-off (--runner flink)
        "xp.flink.events",
        "xp.flink.attributions",  # the Flink job's attribution rows (decision 0102)
    ]
    by_name = {spec.name: spec for spec in ALL_TOPICS}
    assert by_name[REGISTRY].config == {"cleanup.policy": "compact"}
    for name in (EXPOSURES, EVENTS, DEAD_LETTERS):
        assert by_name[name].config.get("cleanup.policy", "delete") == "delete"


def test_topic_specs_apply_the_prefix() -> None:
    specs = topic_specs(KafkaSettings(topic_prefix="t-1."))
    assert sorted(specs) == sorted(f"t-1.{spec.name}" for spec in ALL_TOPICS)
    assert specs["t-1.xp.registry"].name == REGISTRY


def test_a_tls_port_adds_a_sasl_ssl_listener_that_requires_client_certificates(tmp_path: Path) -> None:
    from xpstream.stack.layout import BrokerConfig, render_server_properties

    plain = BrokerConfig(19092, 19093, tmp_path, admin_password="pw")
    assert "SASL_SSL" not in render_server_properties(plain)
    tls = BrokerConfig(
        19092,
        19093,
        tmp_path,
        admin_password="pw",
        tls_port=19094,
        tls_keystore=tmp_path / "broker.pem",
        tls_truststore=tmp_path / "ca.pem",
    )
    lines = dict(
        line.split("=", 1)
        for line in render_server_properties(tls).splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert lines["listeners"].endswith(",SASL_SSL://127.0.0.1:19094")
    assert lines["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    assert "SASL_SSL:SASL_SSL" in lines["listener.security.protocol.map"]
    assert lines["listener.name.sasl_ssl.ssl.client.auth"] == "required"
    assert lines["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "broker.pem")
    assert lines["listener.name.sasl_ssl.ssl.truststore.location"] == str(tmp_path / "ca.pem")


def test_tls_files_are_generated_once_private_and_chained_to_the_ca(tmp_path: Path) -> None:
    from cryptography import x509

    from xpstream.stack.tls import ensure_tls_files

    files = ensure_tls_files(tmp_path / "tls")
    first = files.ca_cert.read_bytes()
    assert ensure_tls_files(tmp_path / "tls").ca_cert.read_bytes() == first  # kept, not regenerated
    for private in (files.ca_key, files.broker_pem, files.client_key):
        assert private.stat().st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate(first)
    broker = x509.load_pem_x509_certificate(files.broker_pem.read_bytes())
    client = x509.load_pem_x509_certificate(files.client_cert.read_bytes())
    for cert in (broker, client):
        cert.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
