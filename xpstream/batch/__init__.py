"""The batch jobs as one registry: what `xp jobs run …` and the scheduler of `xp up` both run.

- :mod:`.registry`: one entry per job (etl, lake, unit-values, stats, quality, export) and ``all``; each takes
  settings built at the entry point and a window, and returns a report (:class:`~.reports.JobReport`).
- :mod:`.reports`: the report protocol, and the reports of the jobs whose own result is not one.
- :mod:`.settings`: the settings classes of the jobs that need more than one package's settings.

The registry lives in the application (not in ``jobs``) because one of its jobs is ``quality``, which
builds on ``jobs``: ``jobs`` naming ``quality`` would be a cycle (docs/decisions/0048).

The job names are in :mod:`.names` (cheap to import: ``xp --help`` lists them without loading a job).
"""

__all__: list[str] = []
