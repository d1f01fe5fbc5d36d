"""Settings of the batch-job scheduler inside `xp up` (``XP_SCHEDULE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from xpcore.config import CoreSettings

__all__ = ["SCHEDULE_FIELDS", "SchedulerSettings"]

SCHEDULE_FIELDS = {
    "quality": "schedule_quality",
    "unit-values": "schedule_unit_values",
    "stats": "schedule_stats",
    "etl": "schedule_etl",
    "lake": "schedule_lake",
    "export": "schedule_export",
}
"""Job name → settings field holding its cron expression."""


class SchedulerSettings(CoreSettings):
    """When `xp up` runs each batch job: a cron expression per job (empty string: never)."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)

    schedule_quality: str = Field(
        default="*/15 * * * *",
        description=(
            "Cron expression (UTC) of `xp jobs run quality` inside `xp up`; 5 fields, or 6 with seconds "
            "last. Empty: never."
        ),
    )
    schedule_unit_values: str = Field(
        default="* * * * * */30",
        description=(
            "Cron expression (UTC) of `xp jobs run unit-values` (keeps xp.unit_values current so results "
            "read in about a second); the default, with seconds last, is every 30 s. Empty: never."
        ),
    )
    schedule_stats: str = Field(
        default="*/5 * * * *", description="Cron expression (UTC) of `xp jobs run stats`. Empty: never."
    )
    schedule_etl: str = Field(
        default="0 * * * *", description="Cron expression (UTC) of `xp jobs run etl`. Empty: never."
    )
    schedule_lake: str = Field(
        default="30 2 * * *", description="Cron expression (UTC) of `xp jobs run lake`. Empty: never."
    )
    schedule_export: str = Field(
        default="0 1 * * *",
        description=(
            "Cron expression (UTC) of `xp jobs run export` (the named exports of XP_EXPORT_FILE; without "
            "that file a run does nothing). Empty: never."
        ),
    )
    scheduler_stop_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "On shutdown, how long to wait for a running job to finish before leaving it behind "
            "(it is then recorded nowhere and runs again at its next fire time)."
        ),
    )

    def schedule_expressions(self) -> dict[str, str]:
        """Job name → its cron expression, in :data:`SCHEDULE_FIELDS` order."""
        return {
            "quality": self.schedule_quality,
            "unit-values": self.schedule_unit_values,
            "stats": self.schedule_stats,
            "etl": self.schedule_etl,
            "lake": self.schedule_lake,
            "export": self.schedule_export,
        }
