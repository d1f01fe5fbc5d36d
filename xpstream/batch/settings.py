"""Settings of the batch jobs that read more than one package's settings.

Built at the entry point (`xp jobs run`, or `xp up`, whose settings include every job's) and passed
down, so no job builds settings again from the environment.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from jobs.unit_values import UnitValuesSettings
from quality.settings import QualitySettings
from xpcore.config import EtlSettings, ExportSettings

__all__ = ["BatchJobsSettings", "ResultsJobSettings"]


class ResultsJobSettings(UnitValuesSettings, EtlSettings):
    """`xp jobs run stats` and `unit-values`: the unit-values options and the CUPED covariate window
    (``XP_ETL_COVARIATE_DAYS``, the same window as the ETL's)."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)


class BatchJobsSettings(QualitySettings, ExportSettings, ResultsJobSettings):
    """Every batch job's settings in one object: part of what `xp up` holds and hands to each
    scheduled job."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)
