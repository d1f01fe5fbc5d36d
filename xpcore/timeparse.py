"""Time options and query parameters: an ISO date or date-time as an aware UTC datetime.

Shared by the command line (``--since``/``--until``) and the dashboards' API (``?since=``/``?until=``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from xpcore.errors import ValidationError

__all__ = ["parse_time"]


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time option as an aware UTC datetime (no zone: UTC); None stays None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{option} {value!r} is not an ISO date or date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
