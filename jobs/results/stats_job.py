"""``xp jobs run stats``: results of every running experiment of the registry, stored as one snapshot.

Each experiment is computed by :func:`jobs.results.compute.compute_experiment_result` (refreshing unit
values first) and stored in ``xp.results`` (:mod:`jobs.results.snapshots`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobs.results.compute import compute_experiment_result, experiment_plan
from jobs.results.contract import ExperimentAnalysis
from jobs.results.snapshots import store_results
from jobs.stats.results import Method
from xpcore.errors import TerminalError

if TYPE_CHECKING:
    from jobs.unit_values import UnitValuesSettings

__all__ = ["run_stats"]

logger = logging.getLogger(__name__)


def run_stats(
    settings: UnitValuesSettings,
    *,
    covariate_days: float,
    since: datetime | None = None,
    until: datetime | None = None,
    method: Method | None = None,
    registry_timeout: float = 10.0,
) -> list[ExperimentAnalysis]:
    """``xp jobs run stats``: results of every running experiment, stored as one ``xp.results`` snapshot.

    Each experiment is analysed as its ``analysis:`` block says (``method`` overrides its method). An
    experiment whose analysis fails terminally (e.g. a misconfigured metric) is logged and skipped; the
    others are stored, then a :class:`TerminalError` names the failed ones (the job exits non-zero).
    ``settings`` (built at the entry point): the registry, the warehouse and the unit-values options;
    ``covariate_days``: the CUPED covariate window (``XP_ETL_COVARIATE_DAYS``).
    """
    from assignment.registry_topic import read_registry
    from xpcore.warehouse import open_warehouse

    snapshot = read_registry(settings, timeout=registry_timeout)
    experiments = snapshot.running_experiments()
    computed_at = datetime.now(UTC)
    warehouse = open_warehouse(settings)
    results: list[ExperimentAnalysis] = []
    failed: list[str] = []
    try:
        for experiment in experiments:
            try:
                results.append(
                    compute_experiment_result(
                        warehouse,
                        experiment,
                        since=since,
                        until=until,
                        computed_at=computed_at,
                        plan=experiment_plan(snapshot, experiment).with_overrides(method=method),
                        covariate_days=covariate_days,
                        unit_values=settings,
                        fresh=True,  # the background: refresh, never read stale values
                    )
                )
            except TerminalError as error:  # this experiment only; a transient error stops the run
                logger.error("results of %s not computed: %s", experiment.key, error)
                failed.append(f"{experiment.key} ({error})")
        rows = store_results(warehouse, results)
    finally:
        warehouse.close()
    logger.info("stored results", extra={"experiments": len(results), "rows": rows})
    if failed:
        raise TerminalError(
            f"stats: stored {len(results)} experiments; {len(failed)} failed: {'; '.join(failed)}"
        )
    return results
