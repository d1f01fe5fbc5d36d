"""Settings, one pydantic-settings class per deployable, all read from ``XP_*`` environment variables.

Build a settings object at the entry point and pass it down; nothing below the entry points reads
``os.environ``. Every field is documented here and in docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CoreSettings",
    "EtlSettings",
    "KafkaSettings",
    "LakeSettings",
    "ServiceSettings",
    "StackSettings",
    "StreamSettings",
    "WarehouseSettings",
]

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
    sql_allow_external: bool = Field(
        default=False,
        description=(
            "Let SQL from every entry (xp sql, dashboards, the up API) use functions that reach outside "
            "the database: file(), url(), s3(), remote(), executable(), mysql() and the like. Off: refused."
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

    def local_credentials_dirs(self) -> list[Path]:
        """XP_KAFKA_CREDENTIALS_DIR if set, then ``$XP_HOME/secrets/kafka`` (written by `xp stack up`)."""
        return [*super().local_credentials_dirs(), self.home / "secrets" / "kafka"]

    def registry_key_files(self) -> list[Path]:
        """XP_REGISTRY_SIGNING_KEY_FILE if set, then this XP_HOME's ``secrets/registry-signing.keys``."""
        return [*super().registry_key_files(), self.home / "secrets" / "registry-signing.keys"]


class CoreSettings(StackSettings):
    """Everything a one-shot ``xp`` command may need."""

    model_config = _ENV

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


class StreamSettings(CoreSettings):
    """The stream worker (`xp stream run`): batching, validation bounds, dedup and attribution state."""

    model_config = _ENV

    stream_group_id: str = Field(
        default="xp-stream", description="Kafka consumer group of the stream workers (they share partitions)."
    )
    stream_session_timeout_seconds: float = Field(
        default=10.0,
        ge=6,
        description=(
            "Kafka group session timeout: how soon the partitions of a killed worker move to another "
            "(or to its restart)."
        ),
    )
    stream_batch_size: int = Field(
        default=5000, ge=1, description="Most Kafka records one worker processes and loads as one batch."
    )
    stream_batch_wait_seconds: float = Field(
        default=0.5, gt=0, description="Longest wait for a batch to fill before processing what arrived."
    )
    stream_max_future_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A record timestamped more than this after its Kafka timestamp is dead-lettered.",
    )
    stream_max_lateness_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="A record timestamped more than this before its Kafka timestamp is dead-lettered.",
    )
    stream_dedup_retention_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "How long a record id is remembered for deduplication (rebuilt from the warehouse on start); "
            "older re-sends are caught only by the tables' ReplacingMergeTree at merge time."
        ),
    )
    stream_dedup_max_ids: int = Field(
        default=5_000_000,
        ge=1000,
        description="Most record ids the deduplication state keeps (oldest go first).",
    )
    stream_attribution_window_seconds: float = Field(
        default=14 * 86400.0,
        gt=0,
        description="Default attribution window: events up to this long after a unit's first exposure count.",
    )
    stream_hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How long an event stays attributable to exposures that arrive after it (processing time); "
            "also the window of recent events reloaded from the warehouse on start."
        ),
    )
    stream_max_held_events: int = Field(
        default=1_000_000, ge=1, description="Most events held for late exposures (oldest released first)."
    )
    stream_event_names: list[str] = Field(
        default=["pageview", "purchase"],
        description="Known metric event names when the metric catalog is unavailable (JSON list).",
    )
    stream_registry_file: Path | None = Field(
        default=None,
        description=(
            "A JSON registry snapshot ({experiments: {key: {variations: [{id, key, name}]}}}) to validate "
            "against instead of following xp.registry (offline runs, tests)."
        ),
    )
    stream_registry_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds to wait for xp.registry to be read before starting (then: exit 1, never guess).",
    )
    stream_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the worker's Prometheus /metrics endpoint (unset: no endpoint).",
    )
    stream_insert_retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest back-off between retries of a failed (transient) insert."
    )
    stream_batch_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description=(
            "Byte budget of one batch (Kafka values after decompression): the worker stops filling a batch "
            "once it holds this much, so a flood of large records cannot grow its memory without bound."
        ),
    )
    stream_overlap_load: bool = Field(
        default=False,
        description=(
            "Load a batch into the warehouse in a background thread while the next batch is consumed and "
            "processed (offsets are still committed only after the load). Off by default: with chDB the "
            "thread competes with the kernel for the GIL and was slower (docs/benchmarks.md)."
        ),
    )


class ServiceSettings(CoreSettings):
    """The assignment service (`xp assign serve`): HTTP API, exposures producer and spool."""

    model_config = _ENV

    service_host: str = Field(
        default="127.0.0.1",
        description="Interface to bind. Any non-loopback address requires XP_SERVICE_CLIENT_KEYS.",
    )
    service_port: int = Field(default=8100, ge=1, le=65535, description="Port of the HTTP API.")
    service_features_file: Path | None = Field(
        default=None,
        description="Static GrowthBook payload to serve instead of following the registry topic.",
    )
    service_client_keys: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Comma-separated client keys: read the payload, assign, send events. "
            "Empty: no client auth (allowed only on a loopback bind)."
        ),
    )
    service_admin_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated admin keys: everything a client key may do, plus overrides.",
    )
    service_max_batch_units: int = Field(
        default=1000, ge=1, description="Most units in one `POST /v1/assign/batch` request."
    )
    service_max_events: int = Field(
        default=1000, ge=1, description="Most records in one `POST /v1/events` request."
    )
    service_max_body_bytes: int = Field(
        default=4_000_000, ge=1024, description="Largest accepted HTTP request body."
    )
    service_registry_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the registry topic to be read at start."
    )
    exposures_enabled: bool = Field(
        default=True, description="Produce an exposure for every in-experiment assignment."
    )
    exposure_dedup_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="Window in which a unit × experiment × variation exposure is sent only once (0: off).",
    )
    exposure_dedup_max_entries: int = Field(
        default=200_000, ge=1, description="Most entries of the in-process exposure dedup cache (LRU)."
    )
    exposure_attributes: str = Field(
        default="country,device,platform,browser",
        description="Comma-separated unit attributes copied into exposures (for segments).",
    )
    exposure_delivery_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds librdkafka tries to deliver a record before it is spooled to disk instead.",
    )
    spool_dir: Path | None = Field(
        default=None, description="Spool of undeliverable records (default: $XP_HOME/spool)."
    )
    spool_replay_interval: float = Field(
        default=1.0, gt=0, description="Seconds between attempts to replay the spool to Kafka."
    )
    spool_max_bytes: int = Field(
        default=1024**3,
        ge=0,
        description=(
            "Most bytes of records the spool holds before Kafka has taken them (0: unbounded); beyond it "
            "records are dropped and counted (xp_service_spool_full, sink outcome 'dropped'), requests "
            "are still answered."
        ),
    )
    spool_fsync_interval: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Seconds between fsyncs of the spool (each record is written before the request is answered, "
            "so a process crash loses nothing; a power loss may lose this much)."
        ),
    )

    @property
    def spool_path(self) -> Path:
        """Directory of the service's spool files."""
        return self.spool_dir if self.spool_dir is not None else self.home / "spool"


class LakeSettings(CoreSettings):
    """The Parquet data lake (`xp jobs run lake`): where it lives, S3 access, file and batch sizes."""

    model_config = _ENV

    lake_url: str | None = Field(
        default=None,
        description=(
            "Where the lake lives: a directory (path or file:///…) or s3://bucket/prefix. "
            "Unset: $XP_HOME/lake."
        ),
    )
    lake_s3_endpoint_url: str | None = Field(
        default=None,
        description=(
            "S3-compatible endpoint (http(s)://host:port), e.g. MinIO or a test server. Unset: AWS S3."
        ),
    )
    lake_s3_region: str | None = Field(
        default=None, description="S3 region (unset: the AWS SDK default chain, e.g. AWS_REGION)."
    )
    lake_s3_access_key_id: SecretStr | None = Field(
        default=None,
        description="S3 access key id (unset: the AWS SDK default chain: environment, profile, role).",
    )
    lake_s3_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret access key (with XP_LAKE_S3_ACCESS_KEY_ID)."
    )
    lake_s3_session_token: SecretStr | None = Field(
        default=None, description="S3 session token for temporary credentials (optional)."
    )
    lake_tables: list[str] = Field(
        default=["exposures", "events", "attributed_events", "dead_letters"],
        description="Warehouse tables exported to the lake (JSON list of lake table names).",
    )
    lake_batch_rows: int = Field(
        default=500_000,
        ge=1,
        description="Most rows read from the warehouse in one query (bounds the job's memory).",
    )
    lake_max_rows_per_file: int = Field(
        default=5_000_000, ge=1000, description="Most rows in one Parquet file; larger partitions get more."
    )
    lake_compression: str = Field(
        default="zstd", description="Parquet compression codec: zstd, snappy, gzip, lz4 or none."
    )

    @property
    def lake_location(self) -> str:
        """The lake's URL or path as configured, defaulting to ``$XP_HOME/lake``."""
        return self.lake_url if self.lake_url else str(self.home / "lake")


class EtlSettings(CoreSettings):
    """Settings of ``xp jobs run etl`` (``XP_ETL_*``), on top of :class:`CoreSettings`."""

    model_config = _ENV

    etl_covariate_days: float = Field(
        default=14.0,
        gt=0,
        description="Days before a unit's first exposure whose events make its CUPED covariate "
        "(xp.unit_metrics.covariate).",
    )
