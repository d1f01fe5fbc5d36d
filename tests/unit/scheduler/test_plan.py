"""Which jobs are due, overlap skipping, no replay of missed runs (a fake clock: plain datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xpstream.scheduler.cron import JobSchedule
from xpstream.scheduler.plan import Dispatch, SchedulePlan

T0 = datetime(2026, 11, 25, 20, 0, 30, tzinfo=UTC)
STATS = JobSchedule("stats", "*/5 * * * *", "XP_SCHEDULE_STATS")
ETL = JobSchedule("etl", "0 * * * *", "XP_SCHEDULE_ETL")


def at(minutes: float) -> datetime:
    return datetime(2026, 11, 25, 20, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def test_nothing_is_due_before_the_first_fire_time_after_start() -> None:
    plan = SchedulePlan([STATS, ETL], T0)
    assert plan.next_at == {"stats": at(5), "etl": at(60)}
    assert plan.due(at(4.99)) == []
    assert plan.seconds_until_next(at(4)) == 60.0


def test_a_due_job_runs_and_its_next_fire_time_is_planned() -> None:
    plan = SchedulePlan([STATS, ETL], T0)
    assert plan.due(at(5)) == [Dispatch("stats", at(5), "run")]
    assert plan.next_at["stats"] == at(10)
    assert plan.running == {"stats"}
    plan.finished("stats")
    assert plan.due(at(10)) == [Dispatch("stats", at(10), "run")]


def test_a_run_still_going_makes_the_next_fire_time_a_skip() -> None:
    plan = SchedulePlan([STATS], T0)
    plan.due(at(5))
    assert plan.due(at(10)) == [Dispatch("stats", at(10), "skip")]
    assert plan.running == {"stats"}
    plan.finished("stats")
    assert plan.due(at(15)) == [Dispatch("stats", at(15), "run")]


def test_missed_fire_times_are_not_replayed() -> None:
    plan = SchedulePlan([STATS, ETL], T0)
    # The loop wakes 2 h 12 min late (machine asleep): each job runs once, not once per missed time.
    late = at(132)
    assert plan.due(late) == [Dispatch("stats", at(5), "run"), Dispatch("etl", at(60), "run")]
    assert plan.next_at == {"stats": at(135), "etl": at(180)}
    plan.finished("stats")
    plan.finished("etl")
    assert plan.due(late) == []


def test_without_schedules_there_is_no_next_time() -> None:
    plan = SchedulePlan([], T0)
    assert plan.due(at(100)) == []
    assert plan.seconds_until_next(T0) is None
