"""`xp jobs run etl` wiring: settings, the summary line on stdout, the delayed progress bar (no services)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import pytest

import jobs.etl
from jobs.etl import DEFAULT_COVARIATE_DAYS, EtlRange, EtlReport, EtlSettings
from jobs.etl_progress import DelayedProgress
from xpstream.batch.registry import JobName
from xpstream.cli import jobs as cli_jobs

REPORT = EtlReport(EtlRange(date(2026, 11, 1), date(2026, 11, 3)), 2, 6, 1200, 36, 1.25)


def test_etl_job_prints_one_summary_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake_run_etl(settings: Any, **kwargs: Any) -> EtlReport:
        seen.update(kwargs, settings=settings)
        return REPORT

    monkeypatch.setenv("XP_ETL_COVARIATE_DAYS", "7")
    monkeypatch.setattr(jobs.etl, "run_etl", fake_run_etl)
    since = datetime(2026, 11, 1, tzinfo=UTC)
    cli_jobs.run_one(JobName.etl, since, None)
    out = capsys.readouterr().out
    assert out == (
        "etl [2026-11-01, 2026-11-03): 2 experiments, 6 metrics → 1200 unit_metrics rows, "
        "36 daily_metrics rows in 1.2 s\n"
    )
    assert seen["since"] == since and seen["until"] is None
    assert isinstance(seen["settings"], EtlSettings) and seen["settings"].etl_covariate_days == 7.0


def test_covariate_days_default_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_ETL_COVARIATE_DAYS", raising=False)
    assert EtlSettings().etl_covariate_days == DEFAULT_COVARIATE_DAYS == 14.0
    monkeypatch.setenv("XP_ETL_COVARIATE_DAYS", "0")
    with pytest.raises(ValueError, match="greater than 0"):
        EtlSettings()


def test_progress_stays_silent_on_short_runs_and_shows_on_long_ones() -> None:
    quiet = io.StringIO()
    with DelayedProgress("etl", delay_seconds=60, stream=quiet) as progress:
        progress(1, 2, "exp: conversion")
        progress(2, 2, "exp: revenue")
    assert quiet.getvalue() == ""

    loud = io.StringIO()
    with DelayedProgress("etl", delay_seconds=0, stream=loud) as progress:
        progress(1, 2, "exp: conversion")
        bar = progress._progress
        assert bar is not None and bar.tasks[0].completed == 1 and bar.tasks[0].total == 2
        assert bar.console.file is loud
