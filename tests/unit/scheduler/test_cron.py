"""Cron validation and next fire times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xpcore.errors import ConfigError
from xpstream.scheduler.cron import next_fire, parse_schedules, validate_expression

T0 = datetime(2026, 11, 25, 20, 7, 30, tzinfo=UTC)


def test_defaults_parse_and_empty_disables_a_job() -> None:
    schedules = parse_schedules(
        {"quality": "*/15 * * * *", "stats": "*/5  *  * * *", "etl": "", "lake": "  "}
    )
    assert [(s.job, s.expression, s.setting) for s in schedules] == [
        ("quality", "*/15 * * * *", "XP_SCHEDULE_QUALITY"),
        ("stats", "*/5 * * * *", "XP_SCHEDULE_STATS"),
    ]


@pytest.mark.parametrize("bad", ["every minute", "61 * * * *", "* * * *", "* * * * * * *", "*/0 * * * *"])
def test_an_invalid_expression_is_a_config_error_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"XP_SCHEDULE_ETL=.*not a valid cron expression"):
        parse_schedules({"etl": bad})


def test_next_fire_is_strictly_after_and_utc() -> None:
    assert next_fire("*/15 * * * *", T0) == datetime(2026, 11, 25, 20, 15, tzinfo=UTC)
    assert next_fire("*/15 * * * *", datetime(2026, 11, 25, 20, 15, tzinfo=UTC)) == datetime(
        2026, 11, 25, 20, 30, tzinfo=UTC
    )
    assert next_fire("30 2 * * *", T0) == datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    assert next_fire("0 * * * *", T0.replace(tzinfo=None)).tzinfo is not None  # naive taken as UTC


def test_a_sixth_field_is_seconds() -> None:
    assert validate_expression("* * * * * */2", "XP_SCHEDULE_STATS") == "* * * * * */2"
    assert next_fire("* * * * * */2", T0) == datetime(2026, 11, 25, 20, 7, 32, tzinfo=UTC)
    assert next_fire("* * * * * *", T0) == datetime(2026, 11, 25, 20, 7, 31, tzinfo=UTC)


def test_a_hyphenated_job_names_its_setting_with_underscores() -> None:
    from xpstream.scheduler.settings import SCHEDULE_FIELDS, SchedulerSettings

    [schedule] = parse_schedules({"unit-values": "* * * * * */30"})
    assert schedule.setting == "XP_SCHEDULE_UNIT_VALUES"
    assert SCHEDULE_FIELDS["unit-values"] == "schedule_unit_values"
    default = SchedulerSettings.model_fields["schedule_unit_values"].default
    # every 30 s by default: the seconds field is the sixth
    assert next_fire(default, T0) == datetime(2026, 11, 25, 20, 8, 0, tzinfo=UTC)
    assert next_fire(default, datetime(2026, 11, 25, 20, 8, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 20, 8, 30, tzinfo=UTC
    )
