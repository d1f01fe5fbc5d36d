"""The batch-job registry: one entry per job, each ``run(settings, since, until, on_step) → report``.

`xp jobs run …` (the CLI: prints the report, picks the exit code) and the scheduler of `xp up` (logs
it, records the run in ``xp.job_runs``) both call :func:`run_job` / :func:`run_all`; neither calls the
other, and no job prints. Settings are built by the caller at its entry point and passed in:
:attr:`BatchJob.settings_class` says which class a job needs (`xp up`'s settings are all of them).

``since``/``until`` is the window (None: the job's default); unit-values ignores it (values are per
unit). ``on_step`` is a progress callback ``(done, total, label)``; only the ETL reports steps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quality.settings import QualitySettings
from xpcore.config import CoreSettings, EtlSettings, ExportSettings, LakeSettings
from xpcore.errors import NotYetAvailableError, XpError
from xpstream.batch.names import JobName
from xpstream.batch.reports import JobReport, StatsReport, UnitValuesReport
from xpstream.batch.settings import ResultsJobSettings

__all__ = [
    "JOBS",
    "BatchJob",
    "JobName",
    "JobOutcome",
    "ProgressCallback",
    "ProgressFactory",
    "RunAllReport",
    "run_all",
    "run_job",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
"""``on_step(done, total, label)``: a job's progress (the ETL's steps)."""

ProgressFactory = Callable[[str], AbstractContextManager[ProgressCallback | None]]
"""``progress(job_name)``: a context manager giving the run's progress callback (e.g. a progress bar
that is stopped on exit; :class:`jobs.etl_progress.DelayedProgress` is one)."""


Run = Callable[[Any, datetime | None, datetime | None, ProgressCallback | None], JobReport]


@dataclass(frozen=True)
class BatchJob:
    """One batch job: its name, the settings class it needs, and how to run it."""

    name: JobName
    settings_class: type[CoreSettings]
    run: Run


def _etl(
    settings: EtlSettings, since: datetime | None, until: datetime | None, on_step: ProgressCallback | None
) -> JobReport:
    """Per-unit and daily metric rollups (jobs/etl.py)."""
    from jobs.etl import run_etl

    return run_etl(settings, since=since, until=until, on_step=on_step)


def _lake(
    settings: LakeSettings, since: datetime | None, until: datetime | None, on_step: ProgressCallback | None
) -> JobReport:
    """Warehouse tables exported to the Parquet lake (jobs/lake/)."""
    from jobs.lake import run_lake

    return run_lake(settings, since=since, until=until)


def _unit_values(
    settings: ResultsJobSettings,
    since: datetime | None,
    until: datetime | None,
    on_step: ProgressCallback | None,
) -> JobReport:
    """Every running experiment's unit values refreshed (the window does not apply)."""
    from jobs.unit_values.job import run_unit_values

    return UnitValuesReport(run_unit_values(settings, covariate_days=settings.etl_covariate_days))


def _stats(
    settings: ResultsJobSettings,
    since: datetime | None,
    until: datetime | None,
    on_step: ProgressCallback | None,
) -> JobReport:
    """Results of every running experiment, stored as a snapshot in ``xp.results``."""
    from jobs.results.stats_job import run_stats

    return StatsReport(
        tuple(run_stats(settings, covariate_days=settings.etl_covariate_days, since=since, until=until))
    )


def _quality(
    settings: QualitySettings,
    since: datetime | None,
    until: datetime | None,
    on_step: ProgressCallback | None,
) -> JobReport:
    """Data-quality suites and experiment health checks (quality/run.py)."""
    from quality.run import run_quality

    return run_quality(settings, since=since, until=until)


def _export(
    settings: ExportSettings,
    since: datetime | None,
    until: datetime | None,
    on_step: ProgressCallback | None,
) -> JobReport:
    """The named exports of ``XP_EXPORT_FILE``, each run recorded in ``xp.export_runs`` (jobs/exports/)."""
    from jobs.exports import run_exports

    return run_exports(settings, since=since, until=until)


JOBS: dict[JobName, BatchJob] = {
    JobName.etl: BatchJob(JobName.etl, EtlSettings, _etl),
    JobName.lake: BatchJob(JobName.lake, LakeSettings, _lake),
    JobName.unit_values: BatchJob(JobName.unit_values, ResultsJobSettings, _unit_values),
    JobName.stats: BatchJob(JobName.stats, ResultsJobSettings, _stats),
    JobName.quality: BatchJob(JobName.quality, QualitySettings, _quality),
    JobName.export: BatchJob(JobName.export, ExportSettings, _export),
}
"""Every job but ``all``, in the order ``all`` runs them (unit-values before stats)."""


@contextlib.contextmanager
def _no_progress(job: str) -> Iterator[ProgressCallback | None]:
    yield None


def run_job(
    name: JobName,
    settings: CoreSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: ProgressFactory = _no_progress,
) -> JobReport:
    """Run one job with ``settings`` (an instance of its :attr:`BatchJob.settings_class`)."""
    job = JOBS[name]
    if not isinstance(settings, job.settings_class):
        raise TypeError(f"{name.value} needs {job.settings_class.__name__}, got {type(settings).__name__}")
    with progress(name.value) as on_step:
        return job.run(settings, since, until, on_step)


@dataclass(frozen=True)
class JobOutcome:
    """How one job of ``all`` went: its report, or the error that stopped it."""

    job: JobName
    report: JobReport | None = None
    error: Exception | None = None

    @property
    def skipped(self) -> bool:
        """Not available (:class:`~xpcore.errors.NotYetAvailableError`): a note, not a failure."""
        return isinstance(self.error, NotYetAvailableError)

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.skipped

    def error_line(self) -> str:
        """``<job>: skipped: …`` or ``<job>: failed: …`` (empty when the job ran)."""
        if self.error is None:
            return ""
        if self.skipped:
            return f"{self.job.value}: skipped: {self.error}"
        if isinstance(self.error, XpError):
            return f"{self.job.value}: failed: {self.error}"
        return f"{self.job.value}: failed: unexpected {type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class RunAllReport:
    """``all``: every job's outcome, in order. Not ok when a job that is available failed."""

    outcomes: tuple[JobOutcome, ...]

    @property
    def ok(self) -> bool:
        return not any(outcome.failed for outcome in self.outcomes)

    def summary(self) -> str:
        return "\n".join(
            outcome.report.summary() if outcome.report is not None else outcome.error_line()
            for outcome in self.outcomes
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "jobs": [
                {
                    "job": outcome.job.value,
                    "outcome": "skipped" if outcome.skipped else "failed" if outcome.failed else "ok",
                    "error": outcome.error_line() or None,
                    "report": outcome.report.to_json() if outcome.report is not None else None,
                }
                for outcome in self.outcomes
            ],
        }


def run_all(
    settings_for: Callable[[BatchJob], CoreSettings],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: ProgressFactory = _no_progress,
    on_outcome: Callable[[JobOutcome], None] | None = None,
) -> RunAllReport:
    """Every job in order; one that fails or is not available does not stop the later ones.

    ``settings_for(job)`` builds each job's settings (inside the job's run, so a bad setting fails that
    job only); ``on_outcome`` hears about each job as soon as it is done.
    """
    outcomes = []
    for name in JOBS:
        try:
            outcome = JobOutcome(
                name,
                report=run_job(name, settings_for(JOBS[name]), since=since, until=until, progress=progress),
            )
        except Exception as error:
            if not isinstance(error, XpError):
                logger.debug("job %s failed", name.value, exc_info=True)
            outcome = JobOutcome(name, error=error)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return RunAllReport(tuple(outcomes))
