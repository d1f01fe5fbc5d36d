"""One experiment's results, fresh from the warehouse: ``xp results``, the dashboards, the stats job.

:func:`compute_experiment_result` fetches the sums (:mod:`jobs.results.sums`) over units first exposed
in ``[since, until)``, analyses them (:mod:`jobs.results.analysis`) and, with a segment, the breakdown
(:mod:`jobs.results.segments`); with ``until`` now, the unit values may be read as of their last refresh
while it is younger than ``XP_RESULTS_MAX_STALENESS_SECONDS`` (the result's ``data_as_of``; ``fresh=True``
and the stats job always refresh). Degenerate data gives coded results (see :mod:`jobs.results.analysis`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.analysis_plan import AnalysisPlan, plan_from_metadata
from jobs.results.analysis import analyze_experiment
from jobs.results.contract import ExperimentAnalysis
from jobs.results.quantile_stats import fetch_experiment_quantiles
from jobs.results.segments import DEFAULT_TOP, analyze_segments
from jobs.results.sums import DEFAULT_COVARIATE_DAYS, fetch_experiment_sums
from jobs.stats.results import Method

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from jobs.unit_values import UnitValuesSettings
    from xpcore.warehouse import Warehouse

__all__ = ["EPOCH", "compute_experiment_result", "experiment_plan"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default start of the analysis window: every exposure."""


def experiment_plan(snapshot: Any, experiment: ExperimentSpec) -> AnalysisPlan:
    """The experiment's ``analysis:`` block from the registry (defaults when it has none)."""
    definition = snapshot.experiment_definition(experiment.key)
    return plan_from_metadata(definition.metadata if definition is not None else None)


def compute_experiment_result(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    computed_at: datetime | None = None,
    method: Method = "sequential",
    alpha: float = 0.05,
    plan: AnalysisPlan | None = None,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
    segment: str | None = None,
    top: int = DEFAULT_TOP,
    unit_values: UnitValuesSettings | None = None,
    fresh: bool = False,
) -> ExperimentAnalysis:
    """Results of one experiment over units first exposed in ``[since, until)`` (default: all, now).

    ``plan`` (default: ``method`` and ``alpha`` only) may ask for CUPED and a correction; ``segment``
    adds the breakdown by that exposure attribute (``top`` values plus "other"). ``unit_values``
    (default: read from the environment) says whether precomputed per-unit values answer (decision 0028)
    and how stale they may be when ``until`` is now; ``fresh`` refreshes them first whatever their age.
    The result's ``data_as_of``: events stored before it are folded in.
    """
    plan = plan or AnalysisPlan(method=method, alpha=alpha)
    computed_at = computed_at or datetime.now(UTC)
    since = since or EPOCH
    open_window, until = until is None, until or computed_at
    sums, by_segment, stored_as_of = fetch_experiment_sums(
        warehouse,
        experiment,
        since=since,
        until=until,
        dimension=segment or "",
        cuped=plan.cuped,
        covariate_days=covariate_days,
        unit_values=unit_values,
        fresh=fresh,
        open_window=open_window,
    )
    result = analyze_experiment(
        experiment,
        sums,
        computed_at=computed_at,
        since=since,
        until=until,
        plan=plan,
        covariate_days=covariate_days,
        quantiles=fetch_experiment_quantiles(warehouse, experiment, since=since, until=until),
    )
    as_of = min(until, computed_at, stored_as_of or computed_at)
    result = replace(result, data_as_of=as_of)
    if not segment:
        return result
    breakdown = analyze_segments(
        experiment,
        by_segment,
        dimension=segment,
        top=top,
        plan=plan,
        computed_at=computed_at,
        since=since,
        until=until,
    )
    return replace(result, segments=breakdown)
