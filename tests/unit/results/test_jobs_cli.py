"""xpstream.cli.jobs / results: option parsing and `xp jobs run all` ordering (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from xpcore.config import CoreSettings
from xpcore.errors import NotYetAvailableError, TerminalError, ValidationError
from xpcore.timeparse import parse_time
from xpstream.batch import registry
from xpstream.batch.registry import BatchJob, JobName
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


class Done:
    """A report that says which job ran."""

    def __init__(self, name: str) -> None:
        self.name = name

    ok = True

    def summary(self) -> str:
        return f"{self.name}: done"

    def to_json(self) -> dict[str, str]:
        return {"job": self.name}


def recorder(calls: list[str], name: JobName, error: Exception | None = None) -> BatchJob:
    def run(settings: object, since: datetime | None, until: datetime | None, on_step: object) -> Done:
        calls.append(name.value)
        if error is not None:
            raise error
        return Done(name.value)

    return BatchJob(name, CoreSettings, run)


def test_all_runs_in_order_and_skips_pending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        registry,
        "JOBS",
        {
            JobName.etl: recorder(calls, JobName.etl, NotYetAvailableError("etl lands with issue #5")),
            JobName.lake: recorder(calls, JobName.lake),
            JobName.stats: recorder(calls, JobName.stats),
            JobName.quality: recorder(calls, JobName.quality, NotYetAvailableError("issue #6")),
        },
    )
    jobs._run_all(None, None)
    assert calls == ["etl", "lake", "stats", "quality"]
    assert "etl: skipped" in capsys.readouterr().err


def test_all_fails_only_when_an_available_job_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        registry,
        "JOBS",
        {
            JobName.etl: recorder(calls, JobName.etl, NotYetAvailableError("pending")),
            JobName.lake: recorder(calls, JobName.lake, TerminalError("disk full")),
            JobName.stats: recorder(calls, JobName.stats),
        },
    )
    with pytest.raises(typer.Exit) as exit_info:
        jobs._run_all(None, None)
    assert exit_info.value.exit_code == 1
    assert calls == ["etl", "lake", "stats"]  # a failure does not stop the later jobs


def test_unit_values_runs_before_stats_in_all_and_has_help() -> None:
    from typer.testing import CliRunner

    from xpstream.cli.main import app

    order = [name.value for name in registry.JOBS]
    assert "unit-values" in order and order.index("unit-values") < order.index("stats")
    result = CliRunner().invoke(app, ["jobs", "run", "--help"])
    assert result.exit_code == 0 and "unit-values" in result.output
    assert "xp jobs run unit-values" in result.output and "Example" in result.output
