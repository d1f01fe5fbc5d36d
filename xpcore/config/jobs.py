"""Settings of the batch jobs that need more than :class:`CoreSettings`: the lake and the ETL."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from xpcore.config.base import ENV, CoreSettings

__all__ = ["EtlSettings", "ExportSettings", "LakeSettings"]


class LakeSettings(CoreSettings):
    """The Parquet data lake (`xp jobs run lake`): where it lives, S3 access, file and batch sizes."""

    model_config = ENV

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


class ExportSettings(LakeSettings):
    """Scheduled exports (`xp jobs run export`): which (a YAML file), where to, and read sizes. S3
    destinations use the lake's S3 settings (``XP_LAKE_S3_*``)."""

    model_config = ENV

    export_file: Path | None = Field(
        default=None,
        description=(
            "YAML file declaring the named exports (docs/exports.md). Unset: `xp jobs run export` has "
            "nothing to do and says so."
        ),
    )
    export_url: str | None = Field(
        default=None,
        description=(
            "Default destination of the exports: a directory (path or file:///…) or s3://bucket/prefix "
            "(with the XP_LAKE_S3_* settings). Unset: $XP_HOME/exports."
        ),
    )
    export_batch_rows: int = Field(
        default=50_000, ge=1, description="Rows read from the warehouse per query by an export."
    )

    @property
    def export_location(self) -> str:
        """The default destination as configured, defaulting to ``$XP_HOME/exports``."""
        return self.export_url if self.export_url else str(self.home / "exports")


class EtlSettings(CoreSettings):
    """Settings of ``xp jobs run etl`` (``XP_ETL_*``), on top of :class:`CoreSettings`."""

    model_config = ENV

    etl_covariate_days: float = Field(
        default=14.0,
        gt=0,
        description="Days before a unit's first exposure whose events make its CUPED covariate "
        "(xp.unit_metrics.covariate).",
    )
