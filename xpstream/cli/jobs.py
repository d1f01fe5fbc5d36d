"""`xp jobs run …`: batch jobs (issues #5 and #6), run through the registry (xpstream/batch/).

``etl`` (jobs/etl.py), ``unit-values`` (jobs/unit_values/job.py: keeps ``xp.unit_values`` current,
decision 0028), ``stats`` (jobs/results/stats_job.py), ``lake`` (jobs/lake/__init__.py), ``quality``
(quality/run.py, issue #6) and ``export`` (jobs/exports/: the named exports of ``XP_EXPORT_FILE``) run.
``all`` runs etl, lake, unit-values, stats, quality and export in order,
skips the unavailable ones with a note, and fails (exit 1) only if an available job failed.

This module builds each job's settings, runs it through :mod:`xpstream.batch.registry` and prints its
report: the ETL's and quality's summary on stdout, the others' on stderr (as they always were).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from jobs.etl_progress import DelayedProgress
from xpcore.errors import ValidationError
from xpcore.timeparse import parse_time
from xpstream.batch.names import JobName

if TYPE_CHECKING:
    from xpstream.batch.registry import JobOutcome
    from xpstream.batch.reports import JobReport

__all__ = ["JobName", "register", "run", "run_one"]

jobs_app = typer.Typer(help="Run batch jobs.", no_args_is_help=True)

_SUMMARY_ON_STDOUT = frozenset({JobName.etl, JobName.quality})
"""Jobs whose summary goes to stdout; the others write theirs to stderr."""


def _print(name: JobName, report: JobReport) -> None:
    if name in _SUMMARY_ON_STDOUT:
        typer.echo(report.summary())
    else:
        sys.stderr.write(report.summary() + "\n")


def _progress(job: str) -> DelayedProgress:
    """A progress bar on stderr once a job's steps take a few seconds (only the ETL reports steps)."""
    return DelayedProgress(job)


def run_one(name: JobName, since: datetime | None, until: datetime | None) -> JobReport:
    """Run one job (not ``all``) with settings from the environment and print its summary."""
    from xpcore.config import load_settings
    from xpstream.batch.registry import JOBS, run_job

    job = JOBS[name]
    report = run_job(name, load_settings(job.settings_class), since=since, until=until, progress=_progress)
    _print(name, report)
    return report


def _quality(
    since: datetime | None, until: datetime | None, *, output_format: str = "text", strict: bool = False
) -> None:
    """Every data-quality suite and check (quality/run.py); the summary on stderr (text) or the JSON
    contract on stdout. Exit 0 when the checks ran; with ``strict``, exit 1 when any failed."""
    from quality.run import QualityRun
    from xpcore.config import load_settings
    from xpstream.batch.registry import JOBS, run_job

    job = JOBS[JobName.quality]
    run = run_job(JobName.quality, load_settings(job.settings_class), since=since, until=until)
    assert isinstance(run, QualityRun)
    if output_format == "json":
        typer.echo(json.dumps(run.to_json(), default=str))
        sys.stderr.write(run.summary().splitlines()[0] + f"\n  report: {run.report_path}\n")
    else:
        typer.echo(run.summary())
    if strict and not run.ok:
        raise typer.Exit(1)


def _print_outcome(outcome: JobOutcome) -> None:
    if outcome.report is not None:
        _print(outcome.job, outcome.report)
    else:
        sys.stderr.write(outcome.error_line() + "\n")


def _run_all(since: datetime | None, until: datetime | None) -> None:
    from xpcore.config import load_settings
    from xpstream.batch.registry import run_all

    report = run_all(
        lambda job: load_settings(job.settings_class),
        since=since,
        until=until,
        progress=_progress,
        on_outcome=_print_outcome,
    )
    if not report.ok:
        raise typer.Exit(1)


@jobs_app.command("run")
def run(
    job: JobName = typer.Argument(..., help="etl, lake, unit-values, stats, quality, export or all."),
    since: str | None = typer.Option(
        None, "--since", help="Start of the window (ISO date/time; UTC if no zone)."
    ),
    until: str | None = typer.Option(None, "--until", help="End of the window (ISO date/time; default now)."),
    output_format: str = typer.Option(
        "text", "--format", help="quality only: text (a summary) or json ({success, checks: [...]})."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="quality only: exit 1 when any check failed (for cron and CI)."
    ),
) -> None:
    """Run one batch job, or all of them in order.

    unit-values: bring xp.unit_values (per-unit metric values that results read) up to date for every
    running experiment, and merge replaced rows when they pile up; --since/--until do not apply. `xp up`
    runs it every 30 s (XP_SCHEDULE_UNIT_VALUES).

    stats: results of every running experiment, stored as a snapshot in xp.results (units first exposed
    in [--since, --until)).

    quality: great-expectations suites and experiment health checks on the window (default: the last
    24 hours); outcomes in xp.dq_results, report under $XP_HOME/reports/quality/latest/, alerts on
    xp.alerts. Exit 0 when the checks ran, whatever they found; --strict: exit 1 if any failed.

    export: every named export of XP_EXPORT_FILE (results snapshots, exposures/events/dead letters of a
    window, the latest quality outcomes) as CSV, JSON, XLSX or Parquet into a folder or S3, one new file
    per export and run; each recorded in xp.export_runs (docs/exports.md). --since/--until override the
    windows. `xp up` runs it at 01:00 UTC (XP_SCHEDULE_EXPORT).

    Example: xp jobs run stats

    Example: XP_EXPORT_FILE=exports.yaml xp jobs run export

    Example: xp jobs run unit-values

    Example: xp jobs run quality --strict

    Example: xp jobs run quality --format json --since 2026-11-24

    Example: xp jobs run all --since 2026-11-01 --until 2026-11-25
    """
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if output_format not in ("text", "json"):
        raise ValidationError(f"--format must be text or json, got {output_format!r}")
    if job is JobName.quality:
        _quality(start, end, output_format=output_format, strict=strict)
    elif output_format != "text" or strict:
        raise ValidationError("--format and --strict apply to `xp jobs run quality` only")
    elif job is JobName.all:
        _run_all(start, end)
    else:
        run_one(job, start, end)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
