"""The batch jobs as one registry: what `xp jobs run …` and the scheduler of `xp up` both run.

- :mod:`.registry`: one entry per job (etl, lake, unit-values, stats, quality) and ``all``; each takes
  settings built at the entry point and a window, and returns a report (:class:`~.reports.JobReport`).
- :mod:`.reports`: the report protocol, and the reports of the jobs whose own result is not one.
- :mod:`.settings`: the settings classes of the jobs that need more than one package's settings.

The registry lives in the application (not in ``jobs``) because one of its jobs is ``quality``, which
builds on ``jobs``: ``jobs`` naming ``quality`` would be a cycle (docs/decisions/0048).
"""

from xpstream.batch.registry import (
    JOBS,
    BatchJob,
    JobName,
    JobOutcome,
    RunAllReport,
    run_all,
    run_job,
)
from xpstream.batch.reports import JobReport

__all__ = [
    "JOBS",
    "BatchJob",
    "JobName",
    "JobOutcome",
    "JobReport",
    "RunAllReport",
    "run_all",
    "run_job",
]
