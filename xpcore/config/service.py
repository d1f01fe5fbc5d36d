"""Settings of the assignment service (`xp assign serve`): HTTP API, exposures producer, spool."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from xpcore.config.base import ENV, CoreSettings

__all__ = ["ServiceSettings"]


class ServiceSettings(CoreSettings):
    """The assignment service (`xp assign serve`): HTTP API, exposures producer and spool."""

    model_config = ENV

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
    service_client_rate_limit: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Requests per second each client (the key it presents, else its address) may make on the client "
            "routes; beyond: 429 with Retry-After. 0: no limit."
        ),
    )
    service_client_rate_burst: float = Field(
        default=0.0,
        ge=0,
        description="Requests a client may make at once before its rate applies (0: one second's worth).",
    )
    service_max_streams: int = Field(
        default=500,
        ge=0,
        description=(
            "Most open server-sent event streams (`GET /sub/{client_key}`); beyond: 503. "
            "Each holds a connection."
        ),
    )
    service_stream_heartbeat: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between keep-alive comments on an idle event stream."
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
