"""The batch-job registry (xpstream/batch/): order, settings, reports, and how `xp up` calls it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.etl import EtlRange, EtlReport
from jobs.lake import LakeReport
from xpcore.config import CoreSettings, EtlSettings
from xpcore.errors import NotYetAvailableError, TerminalError
from xpstream.batch import registry
from xpstream.batch.registry import JOBS, BatchJob, JobName, JobOutcome, run_all, run_job
from xpstream.batch.reports import StatsReport, UnitValuesReport
from xpstream.up.runner import scheduled_jobs
from xpstream.up.settings import UpSettings


class Done:
    ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def summary(self) -> str:
        return f"{self.name}: done"

    def to_json(self) -> dict[str, Any]:
        return {"job": self.name}


def recording(seen: list[tuple[str, Any]], name: JobName, error: Exception | None = None) -> BatchJob:
    def run(settings: Any, since: datetime | None, until: datetime | None, on_step: Any) -> Done:
        seen.append((name.value, settings))
        if error is not None:
            raise error
        return Done(name.value)

    return BatchJob(name, CoreSettings, run)


def test_jobs_run_in_the_documented_order() -> None:
    assert [name.value for name in JOBS] == ["etl", "lake", "unit-values", "stats", "quality", "export"]
    assert JobName.all not in JOBS


def test_up_settings_are_every_jobs_settings() -> None:
    """`xp up` hands its one settings object to every scheduled job: it must be each job's class."""
    settings = UpSettings()
    for job in JOBS.values():
        assert isinstance(settings, job.settings_class), job.name


def test_run_job_refuses_settings_of_another_class() -> None:
    with pytest.raises(TypeError, match="etl needs EtlSettings, got CoreSettings"):
        run_job(JobName.etl, CoreSettings())


def test_the_scheduler_runs_each_job_with_the_object_up_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(registry, "JOBS", {name: recording(seen, name) for name in JOBS})
    settings = UpSettings(schedule_lake="")
    calls = scheduled_jobs(settings)
    assert list(calls) == ["etl", "lake", "unit-values", "stats", "quality", "export"]
    for call in calls.values():
        call(None, None)
    assert [job for job, _ in seen] == list(calls)
    assert all(given is settings for _, given in seen)  # never rebuilt from the environment


def test_run_all_reports_each_outcome_and_fails_only_on_an_available_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        registry,
        "JOBS",
        {
            JobName.etl: recording(seen, JobName.etl, NotYetAvailableError("not built")),
            JobName.lake: recording(seen, JobName.lake, TerminalError("disk full")),
            JobName.stats: recording(seen, JobName.stats, KeyError("x")),
            JobName.quality: recording(seen, JobName.quality),
        },
    )
    heard: list[JobOutcome] = []
    built: list[str] = []

    def settings_for(job: BatchJob) -> CoreSettings:
        built.append(job.name.value)
        return CoreSettings()

    report = run_all(settings_for, on_outcome=heard.append)
    assert built == ["etl", "lake", "stats", "quality"]  # each job's settings built for it
    assert [o.job for o in heard] == [JobName.etl, JobName.lake, JobName.stats, JobName.quality]
    assert not report.ok
    assert report.summary().splitlines() == [
        "etl: skipped: not built",
        "lake: failed: disk full",
        "stats: failed: unexpected KeyError: 'x'",
        "quality: done",
    ]
    assert [job["outcome"] for job in report.to_json()["jobs"]] == ["skipped", "failed", "failed", "ok"]


def test_run_all_is_ok_when_only_unavailable_jobs_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        registry,
        "JOBS",
        {
            JobName.etl: recording(seen, JobName.etl, NotYetAvailableError("not built")),
            JobName.quality: recording(seen, JobName.quality),
        },
    )
    assert run_all(lambda job: CoreSettings()).ok


def test_a_bad_setting_fails_that_job_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XP_ETL_COVARIATE_DAYS", "0")
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        registry,
        "JOBS",
        {
            JobName.etl: BatchJob(JobName.etl, EtlSettings, recording(seen, JobName.etl).run),
            JobName.stats: recording(seen, JobName.stats),
        },
    )
    from xpcore.config import load_settings

    report = run_all(lambda job: load_settings(job.settings_class))
    assert report.summary().splitlines()[0].startswith("etl: failed: invalid setting XP_ETL_COVARIATE_DAYS")
    assert [job for job, _ in seen] == ["stats"]


def test_reports_of_etl_and_lake() -> None:
    etl = EtlReport(EtlRange(date(2026, 11, 1), date(2026, 11, 3)), 2, 6, 1200, 36, 1.25)
    assert etl.ok and etl.to_json()["unit_rows"] == 1200 and etl.to_json()["since"] == "2026-11-01"
    lake = LakeReport(url="file:///lake", run_id="r1", since=None, until=None)
    assert lake.ok and lake.summary() == "lake: 0 rows in 0 files → file:///lake"
    assert lake.to_json() == lake.as_dict()


def _variant(units: int, significant: bool) -> Any:
    return SimpleNamespace(units=units, to_json=lambda: {"significant": significant})


def test_stats_report_summary_is_what_the_cli_always_printed() -> None:
    assert StatsReport(()).summary() == "stats: no running experiment"
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    result: Any = SimpleNamespace(
        experiment="checkout",
        metrics=[SimpleNamespace(variants=[_variant(100, False), _variant(98, True)])],
        method="sequential",
        srm_flagged=True,
        computed_at=at,
        to_json=lambda: {"experiment": "checkout"},
    )
    report = StatsReport((result,))
    assert report.summary().splitlines() == [
        "stats: checkout: 198 units, 1 metrics, 1 significant lifts (sequential) · SRM WARNING",
        "stats: stored in xp.results at 2026-11-25T12:00:00+00:00",
    ]
    assert report.ok and report.to_json() == {"results": [{"experiment": "checkout"}]}


def test_unit_values_report_summary_is_what_the_cli_always_printed() -> None:
    nothing: Any = SimpleNamespace(refreshed=(), compaction=None)
    assert UnitValuesReport(nothing).summary() == (
        "unit-values: nothing to refresh (no running experiment, or XP_RESULTS_UNIT_VALUES=false)"
    )
    item = SimpleNamespace(
        experiment="checkout",
        plan=SimpleNamespace(key="p1"),
        refresh=SimpleNamespace(full=False, units=12, seconds=0.5),
    )
    run: Any = SimpleNamespace(
        refreshed=(item,), compaction=SimpleNamespace(compacted=True, rows=40, parts=2, seconds=0.25)
    )
    report = UnitValuesReport(run)
    assert report.summary().splitlines() == [
        "unit-values: checkout (p1): 12 units recomputed in 0.50 s",
        "unit-values: compacted 40 rows (2 parts) in 0.25 s",
    ]
    assert report.to_json()["refreshed"][0]["units"] == 12 and report.to_json()["compaction"]["rows"] == 40
