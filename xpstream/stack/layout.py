"""Where the local stack keeps its files, and the broker's configuration: pure, no processes."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FALLBACK_LOG4J",
    "KAFKA_VERSION",
    "BrokerConfig",
    "KafkaLayout",
    "broker_command",
    "default_lib_dir",
    "format_arguments",
    "format_command",
    "is_broker_command",
    "new_cluster_id",
    "render_server_properties",
]

KAFKA_VERSION = "3.9.1"
"""The Apache Kafka version deploy/kafka/pom.xml resolves (docs/decisions/0001-kafka-version.md)."""

HOST = "127.0.0.1"
"""The local broker listens on loopback only."""

NODE_ID = 1

FALLBACK_LOG4J = """\
# Written by xp stack up because deploy/kafka/log4j.properties was not found beside the jars.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def default_lib_dir() -> Path:
    """deploy/kafka/lib of the source tree this package lives in (filled by `make setup`)."""
    return Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "lib"


@dataclass(frozen=True)
class KafkaLayout:
    """Files of the local broker under ``$XP_HOME/kafka``, and the jars it runs from."""

    home: Path
    lib_dir: Path

    @classmethod
    def create(cls, home: Path, lib_dir: Path | None = None) -> KafkaLayout:
        return cls(home=home.resolve(), lib_dir=(lib_dir or default_lib_dir()).resolve())

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def data_dir(self) -> Path:
        """``log.dirs`` of the broker: partitions and KRaft metadata."""
        return self.kafka_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def server_log(self) -> Path:
        """The broker's own log (log4j)."""
        return self.logs_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        """The JVM's stdout and stderr (start-up failures land here)."""
        return self.logs_dir / "kafka.out"

    @property
    def properties_file(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def lock_file(self) -> Path:
        return self.kafka_dir / "stack.lock"

    @property
    def format_args_file(self) -> Path:
        """The JVM argument file of ``kafka-storage format`` (0600, deleted after the run)."""
        return self.kafka_dir / "format.args"

    @property
    def secrets_dir(self) -> Path:
        """The local broker's generated credentials (``credentials.json``, 0600; directory 0700)."""
        return self.home / "secrets" / "kafka"

    @property
    def tls_dir(self) -> Path:
        """CA, broker and client certificates of the optional SASL_SSL listener (``xpstream.stack.tls``)."""
        return self.home / "secrets" / "tls"

    @property
    def formatted_marker(self) -> Path:
        """Written by ``kafka-storage format``: its presence means storage is formatted."""
        return self.data_dir / "meta.properties"

    @property
    def log4j_file(self) -> Path:
        """deploy/kafka/log4j.properties beside the jars, else a fallback written under kafka_dir."""
        beside = self.lib_dir.parent / "log4j.properties"
        return beside if beside.is_file() else self.kafka_dir / "log4j.properties"


@dataclass(frozen=True)
class BrokerConfig:
    """What varies in the broker's server.properties."""

    port: int
    controller_port: int
    data_dir: Path
    partitions: int = 4
    admin_password: str = ""
    """Password of the ``admin`` principal (the broker's own identity, a super user)."""
    mechanism: str = "SCRAM-SHA-512"
    tls_port: int | None = None
    """Port of an extra SASL_SSL listener (mutual TLS required), or None for none."""
    tls_keystore: Path | None = None
    """The broker's key and certificate (one PEM file) for the SASL_SSL listener."""
    tls_truststore: Path | None = None
    """The CA (PEM) whose client certificates the SASL_SSL listener accepts."""


def _jaas(module: str, password: str, *extra: str) -> str:
    return " ".join((module, "required", 'username="admin"', f'password="{password}"', *extra)) + ";"


def render_server_properties(config: BrokerConfig) -> str:
    """server.properties of a single-node KRaft broker+controller on loopback, SASL and ACLs on.

    Clients (and the broker itself) authenticate with SASL/SCRAM on the client listener; the
    controller listener takes SASL/PLAIN with the admin password only (KRaft cannot use SCRAM there:
    the credentials live in the metadata the controller serves). The StandardAuthorizer denies what
    no ACL allows; ``admin`` is the only super user (docs/decisions/0043). The file holds the admin
    password: it is written 0600.

    Replication factors are 1 (one node); ``auto.create.topics.enable=false`` so a misspelt topic
    fails loudly instead of appearing with the wrong partition count (topics come from
    ``ensure_topics``); the internal topics get few partitions so a fresh broker is ready fast.
    """
    if not config.admin_password or not config.admin_password.replace("-", "").replace("_", "").isalnum():
        raise ValueError("the broker's admin password must be non-empty URL-safe text")
    mechanism = config.mechanism
    scram = _jaas("org.apache.kafka.common.security.scram.ScramLoginModule", config.admin_password)
    plain = _jaas(
        "org.apache.kafka.common.security.plain.PlainLoginModule",
        config.admin_password,
        f'user_admin="{config.admin_password}"',
    )
    listeners = f"SASL_PLAINTEXT://{HOST}:{config.port},CONTROLLER://{HOST}:{config.controller_port}"
    advertised = f"SASL_PLAINTEXT://{HOST}:{config.port}"
    protocols = "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    tls: list[str] = []
    if config.tls_port is not None:
        if config.tls_keystore is None or config.tls_truststore is None:
            raise ValueError("a SASL_SSL listener needs the broker's keystore and the client CA")
        listeners += f",SASL_SSL://{HOST}:{config.tls_port}"
        advertised += f",SASL_SSL://{HOST}:{config.tls_port}"
        protocols += ",SASL_SSL:SASL_SSL"
        tls = [
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={mechanism}",
            f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config={scram}",
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={config.tls_keystore}",
            "listener.name.sasl_ssl.ssl.truststore.type=PEM",
            f"listener.name.sasl_ssl.ssl.truststore.location={config.tls_truststore}",
            "listener.name.sasl_ssl.ssl.client.auth=required",
        ]
    lines = [
        "# Generated by `xp stack up` on every start: change XP_KAFKA_* settings, not this file.",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        f"controller.quorum.voters={NODE_ID}@{HOST}:{config.controller_port}",
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        f"listener.security.protocol.map={protocols}",
        f"sasl.enabled.mechanisms={mechanism}",
        f"sasl.mechanism.inter.broker.protocol={mechanism}",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.sasl_plaintext.sasl.enabled.mechanisms={mechanism}",
        f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config={scram}",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain}",
        *tls,
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
        "allow.everyone.if.no.acl.found=false",
        f"log.dirs={config.data_dir}",
        f"num.partitions={config.partitions}",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=4",
        "group.initial.rebalance.delay.ms=0",
        # One node: after a kill -9 the restarted broker must wait for its old registration to expire.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
        "auto.create.topics.enable=false",
        "delete.topic.enable=true",
        "num.network.threads=2",
        "num.io.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=168",
        "log.segment.bytes=134217728",
        "log.retention.check.interval.ms=300000",
        "",
    ]
    return "\n".join(lines)


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, unpadded URL-safe base64 (as ``kafka-storage random-uuid``).

    Like Kafka's own ``Uuid.randomUuid()``, never one starting with ``-``: the storage tool's argument
    parser would take it for an option (``-t -abc…`` fails with "expected one argument").
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def _jvm_common(java: str, layout: KafkaLayout) -> list[str]:
    return [
        java,
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{layout.log4j_file}",
        f"-Dkafka.logs.dir={layout.logs_dir}",
        "-cp",
        f"{layout.lib_dir}/*",
    ]


def broker_command(java: str, layout: KafkaLayout, heap: str) -> list[str]:
    """``java … kafka.Kafka server.properties``: the broker process."""
    jvm = _jvm_common(java, layout)
    return [
        jvm[0],
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        *jvm[1:],
        "kafka.Kafka",
        str(layout.properties_file),
    ]


def format_arguments(layout: KafkaLayout, cluster_id: str, scram: str) -> list[str]:
    """Everything after ``java`` of ``kafka-storage format``, admin's SCRAM credentials included.

    ``scram`` is ``SCRAM-SHA-512=[name=admin,password=…]``: these go into an argument file (0600, see
    :func:`format_command`), never onto a command line other local users can read in /proc.
    """
    jvm = _jvm_common("java", layout)
    return [
        "-Xmx256m",
        *jvm[1:],
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "-t",
        cluster_id,
        "-c",
        str(layout.properties_file),
        "--add-scram",
        scram,
    ]


def format_command(java: str, layout: KafkaLayout, cluster_id: str) -> list[str]:
    """``java @argfile``: ``kafka-storage format`` with the arguments of :func:`format_arguments`,
    written by the launcher to :attr:`KafkaLayout.format_args_file` (mode 0600) just before it runs.
    ``cluster_id`` is part of that file; it is accepted here to keep the call explicit."""
    del cluster_id
    return [java, f"@{layout.format_args_file}"]


def is_broker_command(argv: Sequence[str], layout: KafkaLayout) -> bool:
    """Whether a process's argv is the broker of this layout (guards against reused pids)."""
    return "kafka.Kafka" in argv and str(layout.properties_file) in argv
