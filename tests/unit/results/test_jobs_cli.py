"""xpstream.cli.jobs / results: option parsing and `xp jobs run all` ordering (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from xpcore.errors import NotYetAvailableError, TerminalError, ValidationError
from xpcore.timeparse import parse_time
from xpstream.cli import jobs


class TestParseTime:
    def test_date_without_zone_is_utc(self) -> None:
        assert parse_time("2026-11-01", "--since") == datetime(2026, 11, 1, tzinfo=UTC)

    def test_zone_is_converted_to_utc(self) -> None:
        parsed = parse_time("2026-11-01T02:00:00+02:00", "--since")
        assert parsed == datetime(2026, 11, 1, tzinfo=UTC) and parsed.tzinfo is UTC
        assert parse_time("2026-11-01T00:00:00Z", "--until") == datetime(
            2026, 11, 1, tzinfo=timezone(timedelta(0))
        )

    def test_none_stays_none_and_garbage_fails(self) -> None:
        assert parse_time(None, "--since") is None
        with pytest.raises(ValidationError, match="--until 'yesterday'"):
            parse_time("yesterday", "--until")


def recorder(calls: list[str], name: str, error: Exception | None = None) -> jobs.Job:
    def job(since: datetime | None, until: datetime | None) -> None:
        calls.append(name)
        if error is not None:
            raise error

    return job


def test_all_runs_in_order_and_skips_pending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        jobs,
        "JOBS",
        {
            jobs.JobName.etl: recorder(calls, "etl", NotYetAvailableError("etl lands with issue #5")),
            jobs.JobName.lake: recorder(calls, "lake"),
            jobs.JobName.stats: recorder(calls, "stats"),
            jobs.JobName.quality: recorder(calls, "quality", NotYetAvailableError("issue #6")),
        },
    )
    jobs._run_all(None, None)
    assert calls == ["etl", "lake", "stats", "quality"]
    assert "etl: skipped" in capsys.readouterr().err


def test_all_fails_only_when_an_available_job_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        jobs,
        "JOBS",
        {
            jobs.JobName.etl: recorder(calls, "etl", NotYetAvailableError("pending")),
            jobs.JobName.lake: recorder(calls, "lake", TerminalError("disk full")),
            jobs.JobName.stats: recorder(calls, "stats"),
        },
    )
    with pytest.raises(typer.Exit) as exit_info:
        jobs._run_all(None, None)
    assert exit_info.value.exit_code == 1
    assert calls == ["etl", "lake", "stats"]  # a failure does not stop the later jobs


def test_unit_values_runs_before_stats_in_all_and_has_help() -> None:
    from typer.testing import CliRunner

    from xpstream.cli.main import app

    order = [name.value for name in jobs.JOBS]
    assert "unit-values" in order and order.index("unit-values") < order.index("stats")
    result = CliRunner().invoke(app, ["jobs", "run", "--help"])
    assert result.exit_code == 0 and "unit-values" in result.output
    assert "xp jobs run unit-values" in result.output and "Example" in result.output
