"""Cron schedules of the batch jobs (pure: no clock, no threads).

Expressions are croniter's: five fields (minute hour day month weekday), or six with a seconds field
last (``* * * * * */2``: every two seconds). Times are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from xpcore.errors import ConfigError

__all__ = ["JobSchedule", "next_fire", "parse_schedules", "validate_expression"]


@dataclass(frozen=True)
class JobSchedule:
    """One job and when it runs."""

    job: str
    expression: str
    setting: str
    """The environment variable it came from (for error messages), e.g. ``XP_SCHEDULE_STATS``."""


def validate_expression(expression: str, setting: str) -> str:
    """``expression`` stripped, or :class:`ConfigError` naming ``setting`` when croniter rejects it."""
    from croniter import croniter

    text = " ".join(expression.split())
    if len(text.split(" ")) not in (5, 6) or not croniter.is_valid(text):
        raise ConfigError(
            f"{setting}={expression!r} is not a valid cron expression: use 5 fields "
            "(minute hour day month weekday, e.g. '*/15 * * * *'), 6 with seconds last, or '' to disable"
        )
    return text


def parse_schedules(expressions: Mapping[str, str], *, prefix: str = "XP_SCHEDULE_") -> list[JobSchedule]:
    """The enabled schedules from ``{job: expression}``; an empty expression disables its job."""
    schedules = []
    for job, expression in expressions.items():
        setting = f"{prefix}{job.upper().replace('-', '_')}"
        if not expression.strip():
            continue
        schedules.append(JobSchedule(job, validate_expression(expression, setting), setting))
    return schedules


def next_fire(expression: str, after: datetime) -> datetime:
    """The first fire time of ``expression`` strictly after ``after`` (UTC-aware)."""
    from croniter import croniter

    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    fire: datetime = croniter(expression, after.astimezone(UTC)).get_next(datetime)
    return fire.astimezone(UTC)
