"""The checked time window and the earlier windows the volume check compares it with. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xpcore.errors import ValidationError

__all__ = ["Window", "check_window"]


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until)`` in UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValidationError("window bounds must be timezone-aware")
        if self.since >= self.until:
            raise ValidationError(
                f"the window is empty: --since {self.since.isoformat()} is not before --until "
                f"{self.until.isoformat()}"
            )

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def trailing(self, count: int) -> list[Window]:
        """The ``count`` windows of the same length right before this one, newest first."""
        step = self.length
        return [Window(self.since - step * (i + 1), self.since - step * i) for i in range(count)]

    def to_json(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def check_window(
    *, since: datetime | None, until: datetime | None, hours: float, now: datetime | None = None
) -> Window:
    """The window a run checks: ``[since, until)``; ``until`` defaults to now, ``since`` to until − hours."""
    end = (until or now or datetime.now(UTC)).astimezone(UTC)
    start = since.astimezone(UTC) if since is not None else end - timedelta(hours=hours)
    return Window(start, end)
