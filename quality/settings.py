"""Settings of the data-quality job (`xp jobs run quality`): window, thresholds, report, alerts.

Every threshold below is documented with what its check means in docs/quality.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from xpcore.config import CoreSettings

__all__ = ["QualitySettings"]


class QualitySettings(CoreSettings):
    """The data-quality job: GX suites, experiment health checks, reports and alerts."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)

    quality_window_hours: float = Field(
        default=24.0, gt=0, description="Length of the checked window, ending at --until (default: now)."
    )
    quality_trailing_windows: int = Field(
        default=7, ge=1, description="Earlier windows of the same length the volume check averages over."
    )
    quality_volume_min_history: int = Field(
        default=3, ge=1, description="Non-empty earlier windows needed before the volume check judges."
    )
    quality_volume_drop_ratio: float = Field(
        default=0.5, gt=0, lt=1, description="Volume fails below this share of the trailing average."
    )
    quality_volume_spike_ratio: float = Field(
        default=3.0, gt=1, description="Volume fails above this multiple of the trailing average."
    )
    quality_stream_max_age_minutes: float = Field(
        default=60.0,
        gt=0,
        description="Freshness of xp.exposures / xp.events: newest row loaded at most this long ago.",
    )
    quality_batch_max_age_hours: float = Field(
        default=26.0,
        gt=0,
        description="Freshness of rollups and results (xp.unit_metrics, xp.daily_metrics, xp.results).",
    )
    quality_dead_letter_max_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Dead letters / (dead letters + valid records) in the window above this fail.",
    )
    quality_srm_p_value: float = Field(
        default=0.001, gt=0, lt=1, description="SRM: a chi-square p-value below this fails."
    )
    quality_max_multiple_variation_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="A share of units exposed to several variations above this fails.",
    )
    quality_max_overridden_share: float = Field(
        default=0.05, ge=0, le=1, description="Share of overridden units above this fails."
    )
    quality_max_units_without_events_share: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="A variation whose share of exposed units with no attributed event exceeds this fails.",
    )
    quality_min_units: int = Field(
        default=100, ge=1, description="Experiments with fewer exposed units are not judged yet."
    )
    quality_max_rows: int = Field(
        default=500_000,
        ge=1000,
        description="Most rows per table the GX suites read (the newest of the window).",
    )
    quality_report_dir: Path | None = Field(
        default=None, description="Where reports are written (default: $XP_HOME/reports/quality)."
    )
    quality_report_keep: int = Field(
        default=30, ge=1, description="Reports kept under the report folder (older run folders are removed)."
    )
    quality_webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible incoming-webhook URL for alerts (unset: no webhook)."
    )
    quality_webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for the webhook to answer."
    )
    quality_quiet_minutes: float = Field(
        default=240.0,
        ge=0,
        description="An ongoing problem alerts again only after this long (or after it resolved).",
    )
    quality_registry_file: Path | None = Field(
        default=None,
        description="YAML experiments file to check against instead of reading xp.registry (offline runs).",
    )
    quality_registry_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for xp.registry to be read."
    )
    quality_kafka_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for alert records to be delivered to xp.alerts."
    )

    @property
    def report_root(self) -> Path:
        """The folder of quality reports (``latest/`` and one folder per run)."""
        return self.quality_report_dir or self.home / "reports" / "quality"
