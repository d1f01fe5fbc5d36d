"""`xp jobs run …`: batch jobs (issues #5 and #6).

``etl`` (jobs/etl.py), ``unit-values`` (jobs/unit_values/job.py: keeps ``xp.unit_values`` current,
decision 0028), ``stats`` (jobs/results/store.py), ``lake`` (jobs/lake/__init__.py) and ``quality``
(quality/run.py, issue #6) run. ``all`` runs etl, lake, unit-values, stats and quality in order,
skips the unavailable ones with a note, and fails (exit 1) only if an available job failed.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer

from xpcore.errors import NotYetAvailableError, ValidationError, XpError
from xpstream.cli._pending import pending

__all__ = ["JOBS", "Job", "JobName", "register", "run"]

jobs_app = typer.Typer(help="Run batch jobs.", no_args_is_help=True)
logger = logging.getLogger(__name__)


class JobName(enum.StrEnum):
    etl = "etl"
    lake = "lake"
    unit_values = "unit-values"
    stats = "stats"
    quality = "quality"
    all = "all"


Job = Callable[[datetime | None, datetime | None], None]


def _etl(since: datetime | None, until: datetime | None) -> None:
    from jobs.etl import EtlSettings, run_etl
    from jobs.etl_progress import DelayedProgress
    from xpstream.cli.results import core_settings

    settings: Any = core_settings(EtlSettings)
    with DelayedProgress("etl") as progress:
        report = run_etl(settings, since=since, until=until, on_step=progress)
    typer.echo(report.summary())


def _quality(
    since: datetime | None, until: datetime | None, *, output_format: str = "text", strict: bool = False
) -> None:
    """Every data-quality suite and check (quality/run.py); the summary on stderr (text) or the JSON
    contract on stdout. Exit 0 when the checks ran; with ``strict``, exit 1 when any failed."""
    import json

    from quality.run import run_quality
    from quality.settings import QualitySettings
    from xpstream.cli.results import core_settings

    settings: Any = core_settings(QualitySettings)
    run = run_quality(settings, since=since, until=until)
    if output_format == "json":
        typer.echo(json.dumps(run.to_json(), default=str))
        sys.stderr.write(run.summary().splitlines()[0] + f"\n  report: {run.report_path}\n")
    else:
        typer.echo(run.summary())
    if strict and not run.success:
        raise typer.Exit(1)


def _lake(since: datetime | None, until: datetime | None) -> None:
    try:
        from jobs.lake import run_lake  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise pending("jobs run lake", 5) from None
    from xpcore import config
    from xpstream.cli.results import core_settings

    settings: Any = core_settings(getattr(config, "LakeSettings", None))
    report = run_lake(settings, since=since, until=until)
    rows, files = getattr(report, "rows", None), getattr(report, "files", None)
    sys.stderr.write(f"lake: {rows} rows in {files} files → {getattr(report, 'url', '?')}\n")


def _unit_values(since: datetime | None, until: datetime | None) -> None:
    """Refresh every running experiment's unit values (the window does not apply: values are per unit)."""
    from jobs.unit_values import UnitValuesSettings
    from jobs.unit_values.job import run_unit_values
    from xpstream.cli.results import core_settings

    run = run_unit_values(core_settings(UnitValuesSettings))
    if not run.refreshed:
        sys.stderr.write(
            "unit-values: nothing to refresh (no running experiment, or XP_RESULTS_UNIT_VALUES=false)\n"
        )
    for item in run.refreshed:
        what = "full build" if item.refresh.full else f"{item.refresh.units} units recomputed"
        took = f"{item.refresh.seconds:.2f} s"
        sys.stderr.write(f"unit-values: {item.experiment} ({item.plan.key}): {what} in {took}\n")
    if run.compaction is not None and run.compaction.compacted:
        merged = run.compaction
        sys.stderr.write(
            f"unit-values: compacted {merged.rows} rows ({merged.parts} parts) in {merged.seconds:.2f} s\n"
        )


def _stats(since: datetime | None, until: datetime | None) -> None:
    from jobs.results.store import run_stats
    from xpstream.cli.results import core_settings

    results = run_stats(core_settings(), since=since, until=until)
    if not results:
        sys.stderr.write("stats: no running experiment\n")
    for result in results:
        significant = sum(
            1 for metric in result.metrics for variant in metric.variants if variant.to_json()["significant"]
        )
        units = sum(v.units for v in result.metrics[0].variants) if result.metrics else 0
        srm = "" if not result.srm_flagged else " · SRM WARNING"
        sys.stderr.write(
            f"stats: {result.experiment}: {units} units, {len(result.metrics)} metrics, "
            f"{significant} significant lifts ({result.method}){srm}\n"
        )
    if results:
        sys.stderr.write(f"stats: stored in xp.results at {results[0].computed_at.isoformat()}\n")


JOBS: dict[JobName, Job] = {
    JobName.etl: _etl,
    JobName.lake: _lake,
    JobName.unit_values: _unit_values,
    JobName.stats: _stats,
    JobName.quality: _quality,
}


def _run_all(since: datetime | None, until: datetime | None) -> None:
    failed: list[str] = []
    for name, job in JOBS.items():
        try:
            job(since, until)
        except NotYetAvailableError as error:
            sys.stderr.write(f"{name.value}: skipped: {error}\n")
        except XpError as error:
            sys.stderr.write(f"{name.value}: failed: {error}\n")
            failed.append(name.value)
        except Exception as error:
            logger.debug("job %s failed", name.value, exc_info=True)
            sys.stderr.write(f"{name.value}: failed: unexpected {type(error).__name__}: {error}\n")
            failed.append(name.value)
    if failed:
        raise typer.Exit(1)


@jobs_app.command("run")
def run(
    job: JobName = typer.Argument(..., help="etl, lake, unit-values, stats, quality or all."),
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

    Example: xp jobs run stats

    Example: xp jobs run unit-values

    Example: xp jobs run quality --strict

    Example: xp jobs run quality --format json --since 2026-11-24

    Example: xp jobs run all --since 2026-11-01 --until 2026-11-25
    """
    from xpstream.cli.results import parse_time

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
        JOBS[job](start, end)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
