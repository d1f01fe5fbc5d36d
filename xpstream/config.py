"""Settings, one pydantic-settings class per deployable, all read from ``XP_*`` environment variables.

Build a settings object at the entry point and pass it down; nothing below the entry points reads
``os.environ``. Every field is documented here and in docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CoreSettings", "KafkaSettings", "StackSettings", "WarehouseSettings"]

_ENV = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)


class WarehouseSettings(BaseSettings):
    """Where the ClickHouse warehouse lives: embedded chDB by default, a server when a URL is set."""

    model_config = _ENV

    home: Path = Field(default=Path(".xp"), description="State directory: Kafka data, logs, chDB store.")
    clickhouse_url: str | None = Field(
        default=None,
        description=(
            "ClickHouse server URL (http(s)://[user:password@]host:port). "
            "Unset: embedded chDB under $XP_HOME/warehouse."
        ),
    )
    clickhouse_user: str = Field(
        default="default", description="ClickHouse server user (a user in the URL takes precedence)."
    )
    clickhouse_password: SecretStr = Field(
        default=SecretStr(""),
        description="ClickHouse server password (a password in the URL takes precedence).",
    )
    clickhouse_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a connection to the ClickHouse server."
    )
    clickhouse_query_timeout: float = Field(
        default=300.0, gt=0, description="Seconds to wait for the ClickHouse server to answer one request."
    )
    store_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Seconds a command waits for another short-lived command to release the embedded chDB store "
            "before failing with 'store busy' (no wait when the owner serves an API)."
        ),
    )

    @property
    def warehouse_path(self) -> Path:
        """Directory of the embedded chDB store. Every xpstream table lives in database ``xp``."""
        return self.home / "warehouse"

    @property
    def location(self) -> str:
        """Human-readable location of the warehouse (URL or path), never including secrets."""
        if self.clickhouse_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.clickhouse_url)
            if parts.username is not None or parts.password is not None:
                host = parts.hostname or ""
                netloc = f"{host}:{parts.port}" if parts.port else host
                return parts._replace(netloc=netloc).geturl()
            return self.clickhouse_url
        return str(self.warehouse_path.resolve())


class KafkaSettings(BaseSettings):
    """How to reach Kafka: the local broker by default, any cluster with SASL/TLS in production."""

    model_config = _ENV

    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str | None = Field(default=None, description="SASL mechanism, e.g. SCRAM-SHA-512.")
    kafka_sasl_username: str | None = Field(default=None, description="SASL username.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_ca_location: str | None = Field(default=None, description="CA bundle for TLS.")
    topic_prefix: str = Field(
        default="", description="Prefix for every topic name (tests use a unique one per test)."
    )
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of each topic created by xp.")
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="Largest accepted encoded record; larger ones are dead-lettered.",
    )

    def confluent_config(self) -> dict[str, str]:
        """librdkafka client settings (secrets revealed only here, for the client)."""
        config = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            config["ssl.ca.location"] = self.kafka_ssl_ca_location
        return config

    def confluent_producer_config(self) -> dict[str, str]:
        """librdkafka producer settings: :meth:`confluent_config` plus the Java/aiokafka partitioner.

        librdkafka's default partitioner (CRC32) puts a key on another partition than Java clients and
        aiokafka/Faust (murmur2) do; ``murmur2_random`` keeps exposures and events co-partitioned
        whichever client produced them (docs/decisions/0001-kafka-version.md).
        """
        return {**self.confluent_config(), "partitioner": "murmur2_random"}

    def topic(self, name: str) -> str:
        """Full topic name for a logical one (``xp.exposures`` → ``<prefix>xp.exposures``)."""
        return f"{self.topic_prefix}{name}"


class StackSettings(KafkaSettings, WarehouseSettings):
    """The local single-machine stack started by ``xp stack up``."""

    model_config = _ENV

    kafka_port: int = Field(
        default=19092,
        ge=1,
        le=65535,
        description="Loopback port of the local broker's client listener (also the default bootstrap).",
    )
    kafka_controller_port: int = Field(
        default=19093, ge=1, le=65535, description="Loopback port of the KRaft controller."
    )
    kafka_heap: str = Field(default="512m", description="Java heap (-Xmx) of the local broker.")
    kafka_start_timeout: float = Field(default=60.0, description="Seconds to wait for the broker to serve.")
    kafka_stop_timeout: float = Field(
        default=30.0, description="Seconds `xp stack down` waits after SIGTERM before SIGKILL."
    )
    kafka_java: str = Field(default="java", description="Java 17+ executable (a name on PATH or a path).")
    kafka_lib_dir: Path | None = Field(
        default=None,
        description="Folder of the Kafka broker jars (default: deploy/kafka/lib, filled by `make setup`).",
    )

    def model_post_init(self, context: object, /) -> None:
        """The local broker is the default bootstrap: derive it from ``kafka_port`` unless set explicitly."""
        if "kafka_bootstrap" not in self.model_fields_set:
            self.kafka_bootstrap = f"127.0.0.1:{self.kafka_port}"


class CoreSettings(StackSettings):
    """Everything a one-shot ``xp`` command may need."""

    model_config = _ENV

    log_level: str = Field(default="WARNING", description="Log level of one-shot commands.")
    api_url: str | None = Field(
        default=None,
        description="HTTP API of a running `xp up` that owns the embedded store (default: discovered).",
    )
