"""One run of a job: outcome, detail and duration; nothing a job raises escapes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import typer

from xpcore.errors import NotYetAvailableError, TransientError
from xpstream.scheduler.cron import JobSchedule
from xpstream.scheduler.runner import SchedulerRunner, run_job
from xpstream.scheduler.store import job_runs_table

DUE = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def ticking() -> Iterator[datetime]:
    now = DUE
    while True:
        yield now
        now += timedelta(seconds=2)


def run(call: object) -> tuple[str, str, float]:
    clock = ticking()
    result = run_job("stats", call, DUE, clock=lambda: next(clock))  # type: ignore[arg-type]
    return result.outcome, result.detail, result.seconds


def raises(error: BaseException) -> object:
    def job(since: object, until: object) -> None:
        raise error

    return job


def test_outcomes() -> None:
    assert run(lambda since, until: None) == ("ok", "", 2.0)
    assert run(raises(NotYetAvailableError("not yet: issue #6"))) == ("skipped", "not yet: issue #6", 2.0)
    assert run(raises(TransientError("warehouse down\nmore"))) == ("failed", "warehouse down", 2.0)
    assert run(raises(ValueError("boom"))) == ("failed", "unexpected ValueError: boom", 2.0)
    assert run(raises(typer.Exit(0)))[0] == "ok"
    assert run(raises(typer.Exit(1)))[0] == "failed"
    assert run(raises(SystemExit(2))) == ("failed", "exited with code 2", 2.0)


def test_a_keyboard_interrupt_is_not_swallowed() -> None:
    with pytest.raises(KeyboardInterrupt):
        run(raises(KeyboardInterrupt()))


def test_runs_become_rows_of_job_runs() -> None:
    clock = ticking()
    first = run_job("etl", lambda s, u: None, DUE, clock=lambda: next(clock))
    table = job_runs_table([first])
    row = table.to_pylist()[0]
    assert row["job"] == "etl" and row["success"] is True and row["outcome"] == "ok"
    assert row["finished_at"] - row["started_at"] == timedelta(seconds=2)
    assert table.column_names == [
        "run_id",
        "job",
        "scheduled_for",
        "started_at",
        "finished_at",
        "success",
        "outcome",
        "detail",
    ]


def test_a_schedule_without_a_job_callable_is_refused() -> None:
    with pytest.raises(Exception, match="no job callable for scheduled job"):
        SchedulerRunner([JobSchedule("nope", "* * * * *", "XP_SCHEDULE_NOPE")], {})
