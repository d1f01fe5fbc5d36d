"""Runs of scheduled jobs as rows of ``xp.job_runs`` (sql/migrations/0007_job_runs.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.warehouse.base import Warehouse

__all__ = ["JOB_RUNS_TABLE", "JobRun", "job_runs_table", "store_job_run"]

JOB_RUNS_TABLE = "xp.job_runs"

Outcome = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class JobRun:
    """One finished run of a job."""

    run_id: str
    job: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.outcome == "ok"

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def job_runs_table(runs: list[JobRun]) -> pa.Table:
    """Rows for ``xp.job_runs`` as a pyarrow Table (pure)."""
    import pyarrow as pa

    stamp = pa.timestamp("ms", tz="UTC")
    return pa.table(
        {
            "run_id": pa.array([r.run_id for r in runs], pa.string()),
            "job": pa.array([r.job for r in runs], pa.string()),
            "scheduled_for": pa.array([r.scheduled_for for r in runs], stamp),
            "started_at": pa.array([r.started_at for r in runs], stamp),
            "finished_at": pa.array([r.finished_at for r in runs], stamp),
            "success": pa.array([r.success for r in runs], pa.bool_()),
            "outcome": pa.array([r.outcome for r in runs], pa.string()),
            "detail": pa.array([r.detail for r in runs], pa.string()),
        }
    )


def store_job_run(warehouse: Warehouse, run: JobRun) -> None:
    """Insert one run (deduplicated by its run id where the table keeps a dedup window)."""
    warehouse.insert_arrow(JOB_RUNS_TABLE, job_runs_table([run]), dedup_token=f"job-run-{run.run_id}")
