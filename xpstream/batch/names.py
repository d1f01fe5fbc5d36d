"""The names of the batch jobs (no imports: the command line lists them without loading any job)."""

from __future__ import annotations

import enum

__all__ = ["JobName"]


class JobName(enum.StrEnum):
    """The jobs `xp jobs run` takes, in the order ``all`` runs them, and ``all``."""

    etl = "etl"
    lake = "lake"
    unit_values = "unit-values"
    stats = "stats"
    quality = "quality"
    export = "export"
    all = "all"
