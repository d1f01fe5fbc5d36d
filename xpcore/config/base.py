"""The shared settings: where the warehouse and Kafka are, the local stack, and one-shot commands.

Every deployable's settings class builds on :class:`CoreSettings` (``xpcore.config.stream``,
``.service``, ``.jobs``, and the packages' own: dashboards, quality, results, the scheduler, `xp up`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ENV", "CoreSettings", "KafkaSettings", "StackSettings", "WarehouseSettings"]

ENV = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)
"""Every settings class reads ``XP_*`` variables, ignores unknown ones, and takes field names as keywords."""

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER", "GSSAPI")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _readable_file(value: Path | str | None) -> Path | str | None:
    """A TLS file setting: it must name a readable file now, not fail later inside a TLS library."""
    if value is None or value == "" or value == "probe":  # librdkafka's "probe": the system's CA paths
        return value or None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {value}")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"cannot read {value}: {error.strerror or error}") from None
    return value


class WarehouseSettings(BaseSettings):
    """Where the ClickHouse warehouse lives: embedded chDB by default, a server when a URL is set."""

    model_config = ENV

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
    clickhouse_cluster: str | None = Field(
        default=None,
        description=(
            "ClickHouse cluster whose schema `xp warehouse ddl --cluster` created (local xp.NAME_local "
            "tables under Distributed xp.NAME): ALTER, OPTIMIZE and TRUNCATE go to the local tables "
            "ON CLUSTER, and pending migrations are refused (apply them with `xp warehouse ddl "
            "--from-version`). Unset: one server."
        ),
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
    clickhouse_verify: bool = Field(
        default=True,
        description="Verify the ClickHouse server's TLS certificate (https URLs). Off: test servers only.",
    )
    clickhouse_ca_cert: Path | None = Field(
        default=None,
        description="CA bundle (PEM) of the ClickHouse server's certificate. Unset: the system's CAs.",
    )
    clickhouse_client_cert: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS with the ClickHouse server."
    )
    clickhouse_client_key: Path | None = Field(
        default=None, description="Private key (PEM) of the ClickHouse client certificate (mutual TLS)."
    )
    sql_allow_external: bool = Field(
        default=False,
        description=(
            "Let SQL from every entry (xp sql, dashboards, the up API) use functions that reach outside "
            "the database: file(), url(), s3(), remote(), executable(), mysql() and the like. Off: refused."
        ),
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_url_shape(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like http(s)://host:port")
        try:
            parts.port  # noqa: B018 - raises on a port out of range or not a number
        except ValueError as error:
            raise ValueError(f"invalid port: {error}") from None
        return value

    @field_validator("clickhouse_ca_cert", "clickhouse_client_cert", "clickhouse_client_key")
    @classmethod
    def _clickhouse_tls_files(cls, value: Path | None) -> Path | None:
        checked = _readable_file(value)
        return Path(checked) if checked is not None else None

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

    def up_api(self) -> tuple[str | None, SecretStr | None]:
        """URL and bearer token of a running `xp up` to reach the store through: none at this level
        (only one-shot commands' :class:`CoreSettings` carry ``XP_API_URL`` and ``XP_API_TOKEN``)."""
        return None, None


class KafkaSettings(BaseSettings):
    """How to reach Kafka: the local broker by default, any cluster with SASL/TLS in production."""

    model_config = ENV

    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN."
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        description="SASL username (set: every client uses it, whatever its role; unset: local credentials).",
    )
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_ca_location: str | None = Field(default=None, description="CA bundle for TLS.")
    kafka_ssl_certificate_location: str | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    kafka_ssl_key_location: str | None = Field(
        default=None, description="Private key (PEM) of the client certificate for mutual TLS."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of the client's private key (mutual TLS)."
    )
    kafka_credentials_dir: Path | None = Field(
        default=None,
        description=(
            "Generated credentials of a local secured broker (`xp stack up` writes $XP_HOME/secrets/kafka): "
            "used, with the principal of each client's role, when XP_KAFKA_SASL_USERNAME is unset and the "
            "bootstrap is that broker's. Default for stack commands: $XP_HOME/secrets/kafka."
        ),
    )
    registry_signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key that signs (and verifies) xp.registry records, as KEY_ID:SECRET (SECRET: base64url of at "
            "least 32 random bytes). Unset: the key file (generated locally on first use)."
        ),
    )
    registry_verify_keys: SecretStr | None = Field(
        default=None,
        description=(
            "More KEY_ID:SECRET pairs (comma-separated) accepted when verifying registry records but never "
            "used to sign: the previous keys during a rotation."
        ),
    )
    registry_signing_key_file: Path | None = Field(
        default=None,
        description=(
            "File of registry signing keys, one KEY_ID:SECRET per line, the first signs, all verify "
            "(mode 0600). Default for stack commands: $XP_HOME/secrets/registry-signing.keys."
        ),
    )
    topic_prefix: str = Field(
        default="", description="Prefix for every topic name (tests use a unique one per test)."
    )
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of each topic created by xp.")
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="Largest accepted encoded record; larger ones are dead-lettered.",
    )

    @field_validator("kafka_security_protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        normal = value.strip().upper()
        if normal not in SECURITY_PROTOCOLS:
            raise ValueError(f"{value!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
        return normal

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _mechanism(cls, value: str | None) -> str | None:
        if not value:
            return None
        normal = value.strip().upper()
        if normal not in SASL_MECHANISMS:
            raise ValueError(f"{value!r} is not one of {', '.join(SASL_MECHANISMS)}")
        return normal

    @field_validator("kafka_ssl_ca_location", "kafka_ssl_certificate_location", "kafka_ssl_key_location")
    @classmethod
    def _kafka_tls_files(cls, value: str | None) -> str | None:
        checked = _readable_file(value)
        return str(checked) if checked is not None else None

    def is_local_bootstrap(self) -> bool:
        """Whether every bootstrap server is on this machine (the local stack, or a test broker)."""
        hosts = [
            server.strip().rsplit(":", 1)[0] for server in self.kafka_bootstrap.split(",") if server.strip()
        ]
        return bool(hosts) and all(host in LOCAL_HOSTS for host in hosts)

    def unreachable_hint(self) -> str:
        """What to check when Kafka cannot be reached (the local stack only when that is configured)."""
        if self.is_local_bootstrap():
            return "is `xp stack up` running?"
        return (
            f"check that XP_KAFKA_BOOTSTRAP is reachable from here and XP_KAFKA_SECURITY_PROTOCOL "
            f"({self.kafka_security_protocol}) is what its listener speaks"
        )

    def local_credentials_dirs(self) -> list[Path]:
        """Where a local broker's generated credentials may be, in order (see XP_KAFKA_CREDENTIALS_DIR)."""
        return [self.kafka_credentials_dir] if self.kafka_credentials_dir is not None else []

    def registry_key_files(self) -> list[Path]:
        """Where registry signing keys may be, in order (see XP_REGISTRY_SIGNING_KEY_FILE)."""
        return [self.registry_signing_key_file] if self.registry_signing_key_file is not None else []

    def confluent_config(self, role: str | None = None) -> dict[str, str]:
        """librdkafka client settings (secrets revealed only here, for the client).

        ``role`` names the client's principal on a local secured broker (``xpcore.kafka.principals``:
        admin, registry, service, worker, quality, loadgen, dashboard; None: admin). It is used only when
        no SASL username is configured and the bootstrap is the broker whose credentials
        :meth:`local_credentials_dirs` holds; with explicit settings (a production cluster) every
        client uses those.
        """
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
        if self.kafka_ssl_certificate_location:
            config["ssl.certificate.location"] = self.kafka_ssl_certificate_location
        if self.kafka_ssl_key_location:
            config["ssl.key.location"] = self.kafka_ssl_key_location
        if self.kafka_ssl_key_password is not None:
            config["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        if not self.kafka_sasl_username:
            from xpcore.kafka.credentials import local_client_config

            config.update(local_client_config(self.local_credentials_dirs(), self.kafka_bootstrap, role))
        return config

    def confluent_producer_config(self, role: str | None = None) -> dict[str, str]:
        """librdkafka producer settings: :meth:`confluent_config` plus the Java/aiokafka partitioner.

        librdkafka's default partitioner (CRC32) puts a key on another partition than Java clients and
        aiokafka/Faust (murmur2) do; ``murmur2_random`` keeps exposures and events co-partitioned
        whichever client produced them (docs/decisions/0001-kafka-version.md).
        """
        return {**self.confluent_config(role), "partitioner": "murmur2_random"}

    def aiokafka_config(self, role: str | None = None) -> dict[str, Any]:
        """The same connection as keyword arguments of aiokafka (and Faust's broker credentials):
        ``bootstrap_servers``, ``security_protocol``, SASL (SCRAM-SHA-256/512, PLAIN) and TLS."""
        config = self.confluent_config(role)
        kwargs: dict[str, Any] = {
            "bootstrap_servers": config["bootstrap.servers"],
            "security_protocol": config["security.protocol"],
        }
        if "sasl.mechanism" in config:
            kwargs["sasl_mechanism"] = config["sasl.mechanism"]
        if "sasl.username" in config:
            kwargs["sasl_plain_username"] = config["sasl.username"]
            kwargs["sasl_plain_password"] = config.get("sasl.password", "")
        if config["security.protocol"] in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=config.get("ssl.ca.location"),
                certfile=config.get("ssl.certificate.location"),
                keyfile=config.get("ssl.key.location"),
                password=config.get("ssl.key.password"),
            )
        return kwargs

    def topic(self, name: str) -> str:
        """Full topic name for a logical one (``xp.exposures`` → ``<prefix>xp.exposures``)."""
        return f"{self.topic_prefix}{name}"


class StackSettings(KafkaSettings, WarehouseSettings):
    """The local single-machine stack started by ``xp stack up``."""

    model_config = ENV

    kafka_port: int = Field(
        default=19092,
        ge=1,
        le=65535,
        description="Loopback port of the local broker's client listener (also the default bootstrap).",
    )
    kafka_controller_port: int = Field(
        default=19093, ge=1, le=65535, description="Loopback port of the KRaft controller."
    )
    kafka_tls_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Also open a SASL_SSL listener (mutual TLS required) on this loopback port, with a local CA and "
            "certificates in $XP_HOME/secrets/tls: to try the production configuration locally. Unset: none."
        ),
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

    def local_credentials_dirs(self) -> list[Path]:
        """XP_KAFKA_CREDENTIALS_DIR if set, then ``$XP_HOME/secrets/kafka`` (written by `xp stack up`)."""
        return [*super().local_credentials_dirs(), self.home / "secrets" / "kafka"]

    def registry_key_files(self) -> list[Path]:
        """XP_REGISTRY_SIGNING_KEY_FILE if set, then this XP_HOME's ``secrets/registry-signing.keys``."""
        return [*super().registry_key_files(), self.home / "secrets" / "registry-signing.keys"]


class CoreSettings(StackSettings):
    """Everything a one-shot ``xp`` command may need."""

    model_config = ENV

    log_level: str = Field(default="WARNING", description="Log level of one-shot commands.")
    api_url: str | None = Field(
        default=None,
        description="HTTP API of a running `xp up` that owns the embedded store (default: discovered).",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token for that API from another machine (one of its XP_UP_TOKENS); local commands "
            "read the owner token from $XP_HOME/warehouse/xp-owner.json (0600) and need none."
        ),
    )
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an HTTP server (service, dashboards, `xp up`) waits for a whole request head.",
    )
    http_keep_alive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive HTTP connection is kept open."
    )
    http_max_connections: int = Field(
        default=1000,
        ge=2,
        description="Open connections per HTTP server beyond which requests are answered 503.",
    )
    http_max_header_bytes: int = Field(
        default=16384,
        ge=1024,
        description="Largest incomplete request head the h11 parser buffers (httptools has its own limit).",
    )
    max_abs_metric_value: float = Field(
        default=1e15,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Largest magnitude of a metric event's value: larger ones (and NaN/Infinity) are dead-lettered "
            "by the stream worker and the HTTP collector alike (docs/decisions/0034)."
        ),
    )

    def up_api(self) -> tuple[str | None, SecretStr | None]:
        """``XP_API_URL`` and ``XP_API_TOKEN``: the API of a running `xp up` that owns the store."""
        return self.api_url, self.api_token
