"""Settings of `xp up` (``XP_UP_*``), on top of every component it runs: the stream worker, the
assignment service, the scheduler and its batch jobs, and the dashboard. Built once at start (a bad
setting of any of them is one line and exit 2) and handed to each component and scheduled job."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from dashboards.settings import DashboardSettings
from xpcore.config import ServiceSettings, StreamSettings
from xpcore.errors import ConfigError
from xpstream.batch.settings import BatchJobsSettings
from xpstream.scheduler.settings import SchedulerSettings

__all__ = ["COMPONENTS", "UpSettings"]

COMPONENTS = ("stream", "scheduler", "dashboard", "service")
"""What `xp up` can run, in start order."""


class UpSettings(SchedulerSettings, StreamSettings, ServiceSettings, BatchJobsSettings, DashboardSettings):
    """`xp up`: its own admin API (health, warehouse API), which components run, and shutdown."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)

    up_host: str = Field(
        default="127.0.0.1",
        description=(
            "Interface of the up process's own API (GET /healthz, the warehouse API). Anything but "
            "loopback requires XP_UP_TOKENS."
        ),
    )
    up_port: int = Field(default=8210, ge=1, le=65535, description="Port of the up process's own API.")
    up_tokens: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Comma-separated operator bearer tokens for the warehouse API (clients on other machines set "
            "XP_API_TOKEN to one). Every request authenticates: local commands use the owner token `xp up` "
            "writes into $XP_HOME/warehouse/xp-owner.json (0600). Empty: allowed only on a loopback bind."
        ),
    )
    up_allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated extra host names the up API answers to (its Host header), besides the bind "
            "host, localhost, 127.0.0.1 and [::1]; anything else is refused (DNS rebinding)."
        ),
    )
    up_components: str = Field(
        default=",".join(COMPONENTS),
        description="Comma-separated components to run: stream, scheduler, dashboard, service.",
    )
    up_restart_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause before restarting a stream worker that failed (doubling from 1 s).",
    )

    def components(self) -> list[str]:
        """The enabled components, validated (a ConfigError names an unknown one)."""
        chosen = [c.strip() for c in self.up_components.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in COMPONENTS]
        if unknown:
            raise ConfigError(
                f"XP_UP_COMPONENTS: unknown component(s) {', '.join(unknown)}; "
                f"choose from {', '.join(COMPONENTS)}"
            )
        return [c for c in COMPONENTS if c in chosen]

    def allowed_hosts(self) -> list[str]:
        """The extra host names of ``XP_UP_ALLOWED_HOSTS``."""
        return [h.strip() for h in self.up_allowed_hosts.split(",") if h.strip()]

    def tokens(self) -> list[str]:
        return [t.strip() for t in self.up_tokens.get_secret_value().split(",") if t.strip()]
