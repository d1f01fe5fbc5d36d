"""The ETL's date range: whole UTC days, defaults, empty ranges refused. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from jobs.etl import EPOCH_DAY, EtlRange, etl_range
from xpcore.errors import ValidationError

NOW = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)


def test_defaults_cover_everything_up_to_and_including_today() -> None:
    assert etl_range(None, None, now=NOW) == EtlRange(EPOCH_DAY, date(2026, 11, 26))


def test_since_rounds_down_and_until_rounds_up_to_whole_days() -> None:
    since = datetime(2026, 11, 3, 13, 5, tzinfo=UTC)
    until = datetime(2026, 11, 5, 0, 0, 1, tzinfo=UTC)
    assert etl_range(since, until, now=NOW) == EtlRange(date(2026, 11, 3), date(2026, 11, 6))


def test_an_until_at_midnight_is_exclusive() -> None:
    etl = etl_range(datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC), now=NOW)
    assert (etl.since_day, etl.until_day) == (date(2026, 11, 3), date(2026, 11, 5))
    assert etl.since == datetime(2026, 11, 3, tzinfo=UTC)
    assert etl.until == datetime(2026, 11, 5, tzinfo=UTC)
    assert str(etl) == "[2026-11-03, 2026-11-05)"


def test_other_time_zones_are_converted_to_utc_days() -> None:
    plus_two = timezone(timedelta(hours=2))
    since = datetime(2026, 11, 3, 1, 0, tzinfo=plus_two)  # 2026-11-02 23:00 UTC
    etl = etl_range(since, None, now=NOW)
    assert etl.since_day == date(2026, 11, 2)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)),
        (datetime(2026, 11, 6, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)),
        (datetime(2026, 11, 27, tzinfo=UTC), None),
    ],
)
def test_an_empty_range_is_refused(since: datetime, until: datetime | None) -> None:
    with pytest.raises(ValidationError, match="--until must be after --since"):
        etl_range(since, until, now=NOW)


def test_a_same_day_window_becomes_that_whole_day() -> None:
    since = datetime(2026, 11, 5, 8, tzinfo=UTC)
    until = datetime(2026, 11, 5, 9, tzinfo=UTC)
    assert etl_range(since, until, now=NOW) == EtlRange(date(2026, 11, 5), date(2026, 11, 6))
