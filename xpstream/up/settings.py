"""Settings of `xp up` (``XP_UP_*``), on top of the stream worker, assignment service and scheduler."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from xpstream.config import ServiceSettings, StreamSettings
from xpstream.errors import ConfigError
from xpstream.scheduler.settings import SchedulerSettings

__all__ = ["COMPONENTS", "UpSettings"]

COMPONENTS = ("stream", "scheduler", "dashboard", "service")
"""What `xp up` can run, in start order."""


class UpSettings(SchedulerSettings, StreamSettings, ServiceSettings):
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
            "Comma-separated bearer tokens for the warehouse API, required from non-loopback clients. "
            "Empty: allowed only on a loopback bind (XP_UP_HOST)."
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

    def tokens(self) -> list[str]:
        return [t.strip() for t in self.up_tokens.get_secret_value().split(",") if t.strip()]
