"""Settings of the dashboard app (`xp dashboard serve`, and the dashboard inside `xp up`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from jobs.unit_values import UnitValuesSettings
from xpcore.config import EtlSettings

__all__ = ["DashboardSettings"]


class DashboardSettings(UnitValuesSettings, EtlSettings):
    """The dashboard web app: where it listens, who may read it, how fresh its pages are; the results it
    computes read the unit-values options and the CUPED covariate window (``XP_ETL_COVARIATE_DAYS``)."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)

    dashboard_host: str = Field(
        default="127.0.0.1",
        description="Interface the dashboard listens on; anything but loopback requires tokens.",
    )
    dashboard_port: int = Field(default=8200, ge=1, le=65535, description="Port of the dashboard.")
    dashboard_read_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated read-only tokens (pages, API, exports). Required off loopback.",
    )
    dashboard_admin_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated admin tokens (everything a read token allows, plus /api/admin/*).",
    )
    dashboard_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often the realtime health page refreshes itself."
    )
    dashboard_health_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="Window of the realtime health charts, in minutes."
    )
    dashboard_view_results_max_age_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A results view with a window or a segment (?since=, ?until=, ?segment=) is computed "
        "in the background; its result is reused this many seconds (re-opening the view is instant), then "
        "the next request computes it again.",
    )
    dashboard_view_results_entries: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="How many computed results of such views are kept (least recently used dropped first); "
        "also the most computations of such views in flight at once.",
    )
    dashboard_view_results_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A failed computation of such a view is shown (its error) to every request for this "
        "many seconds before the next request tries again.",
    )
    dashboard_export_batch_rows: int = Field(
        default=50_000, ge=1000, description="Rows fetched from the warehouse per chunk of a streamed export."
    )
    dashboard_export_api_max_rows: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Most rows one page of the export API (/api/v1/export/…) may ask for (?limit=).",
    )
    dashboard_export_api_max_bytes: int = Field(
        default=8_000_000,
        ge=10_000,
        description="Most bytes of rows in one export API page; a page is cut short there (and goes on).",
    )
    dashboard_export_api_per_minute: int = Field(
        default=120,
        ge=1,
        description="Export API requests per minute per token (per client address without tokens); then 429.",
    )
    dashboard_kafka_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for Kafka when reading consumer lag (then: unknown)."
    )
    dashboard_stream_group_id: str = Field(
        default="xp-stream",
        description="Consumer group whose lag the health page shows (stream workers).",
    )
    dashboard_docs_url: str = Field(
        default="/docs/statistics.md",
        description="Where the results page links for the method (default: docs/statistics.md, served).",
    )
    dashboard_results_max_age_seconds: float = Field(
        default=120.0,
        ge=0,
        description="The results page shows the newest results snapshot at once; when it is older than "
        "this, one background computation per experiment refreshes it (0: refresh on every load).",
    )
    dashboard_realtime_funnel_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The health page's funnel (units first exposed in the last hour or day) is the "
        "experiment page's funnel computation, run in the background: a result at most this old is shown "
        "as it is; an older one is shown while the next runs (one per experiment and window, only while "
        "the page is open).",
    )
    dashboard_units_max_age_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Units so far (experiments list, health page) are an exact count over every exposure; "
        "a count at most this old is served while the next one runs in the background (0: count on every "
        "request).",
    )
