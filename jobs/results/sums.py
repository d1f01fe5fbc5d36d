"""Per-variation sums of an experiment's metrics from the warehouse: the live scan or ``xp.unit_values``.

:func:`fetch_experiment_sums` runs the results queries of :mod:`jobs.results.metric_sql`: one scan for
every metric it can answer (``BatchPlan.sql()``), one per-metric query for the others (and its segment and
CUPED forms). The metrics of the one scan (and their CUPED covariates) are read from ``xp.unit_values``
instead, refreshed first (:mod:`jobs.unit_values`, decision 0028), unless ``XP_RESULTS_UNIT_VALUES=false``
or the window ends before the newest event. Warehouse errors propagate
(:class:`~xpcore.errors.TransientError` / ``TerminalError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import DEFAULT_METRICS, MetricDefinition, MetricType
from jobs.results.analysis import analyzed_metrics
from jobs.results.batch import batch_plan
from jobs.results.metric_sql.scan import cuped_parameters, metric_parameters, metric_sums_sql
from jobs.results.rows import SegmentRows, VariationSums
from jobs.unit_values import UnitValuesSettings, fetch_unit_value_sums
from jobs.unit_values.plan import unit_values_plan
from xpcore.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.warehouse import Warehouse

__all__ = [
    "DEFAULT_COVARIATE_DAYS",
    "experiment_catalog",
    "fetch_experiment_sums",
    "fetch_metric_sums",
    "fetch_segment_sums",
]

DEFAULT_COVARIATE_DAYS = 14.0
"""Pre-exposure window of the CUPED covariate when no setting says otherwise (``XP_ETL_COVARIATE_DAYS``)."""


def _per_metric(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    metrics: Sequence[MetricDefinition],
    *,
    since: datetime,
    until: datetime,
    segment: bool = False,
    cuped: bool = False,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
    dimension: str = "",
) -> dict[str, list[Any]]:
    """One per-metric query (:func:`~jobs.results.metric_sql.scan.metric_sums_sql`) per metric:
    VariationSums rows (with ``segment``: (segment, VariationSums) rows)."""
    if not metrics:
        return {}
    sql = metric_sums_sql(segment=segment, cuped=cuped)
    catalog = experiment_catalog(experiment)
    found: dict[str, list[Any]] = {}
    for metric in metrics:
        parameters = metric_parameters(metric, catalog, experiment=experiment.key, since=since, until=until)
        if cuped:
            parameters = cuped_parameters(parameters, covariate_days)
        elif segment:
            parameters = {**parameters, "dimension": dimension}
        rows = warehouse.query_arrow(sql, parameters).to_pylist()
        if segment:
            found[metric.name] = [(str(row["segment"]), VariationSums.from_row(row)) for row in rows]
        else:
            found[metric.name] = [VariationSums.from_row(row) for row in rows]
    return found


def experiment_catalog(experiment: ExperimentSpec) -> dict[str, MetricDefinition]:
    """The metrics ``experiment`` may refer to by name: the defaults and its own definitions."""
    return {m.name: m for m in (*DEFAULT_METRICS, *experiment.metrics.definitions)}


def _totals(rows: SegmentRows) -> list[VariationSums]:
    """Per-segment rows added up per variation (sums add up), by variation id."""
    total: dict[int, VariationSums] = {}
    for _segment, row in rows:
        total[row.variation_id] = total[row.variation_id] + row if row.variation_id in total else row
    return [total[v] for v in sorted(total)]


def fetch_experiment_sums(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    *,
    since: datetime,
    until: datetime,
    dimension: str = "",
    cuped: bool = False,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
    unit_values: UnitValuesSettings | None = None,
    fresh: bool = True,
    open_window: bool = False,
) -> tuple[dict[str, list[VariationSums]], dict[str, SegmentRows], datetime | None]:
    """(metric → per-variation sums, metric → per-segment rows by ``dimension`` ({} without one), the
    unit values' ``data_as_of`` (None: read live)).

    One scan answers every metric it can (:mod:`jobs.results.batch`,
    :func:`~jobs.results.metric_sql.scan.experiment_sums_sql`); the others take one per-metric query
    each (:func:`~jobs.results.metric_sql.scan.metric_sums_sql`, with its segment form for a
    ``dimension``). Quantile metrics are not summed (:mod:`jobs.results.quantile_stats`). With ``cuped``,
    binomial and mean metrics are also queried with their covariate (its
    CUPED form), which replaces their totals.

    With ``unit_values`` on (default: ``XP_RESULTS_UNIT_VALUES``), the metrics of that one scan (and
    their CUPED covariates) come from ``xp.unit_values`` instead, refreshed first
    (:mod:`jobs.unit_values`, decision 0028): the same numbers; the scan when they cannot answer. Unless
    ``fresh``, an ``open_window`` (``until`` is "now") reads them as of their last refresh while it is
    younger than ``XP_RESULTS_MAX_STALENESS_SECONDS``.
    """
    metrics = [m for m, _role in analyzed_metrics(experiment) if m.type is not MetricType.QUANTILE]
    plan = batch_plan(metrics, experiment_catalog(experiment))
    by_segment: dict[str, SegmentRows] = {}
    adjusted_sums: dict[str, list[VariationSums]] = {}
    options = unit_values if unit_values is not None else UnitValuesSettings()
    data_as_of = None
    if plan.sides:
        stored = None
        if options.results_unit_values:
            stored = fetch_unit_value_sums(
                warehouse,
                experiment.key,
                unit_values_plan(plan, cuped=cuped, covariate_days=covariate_days),
                since=since,
                until=until,
                dimension=dimension,
                margin_seconds=options.results_unit_values_margin_seconds,
                max_staleness_seconds=0.0 if fresh else options.results_max_staleness_seconds,
                open_window=open_window,
                fold=options.results_unit_values_fold,
                overlay_max_age_seconds=(
                    options.results_unit_values_overlay_max_age_seconds
                    if options.results_unit_values_overlay
                    else None
                ),
            )
        if stored is not None:
            adjusted_sums, data_as_of = stored.covariates, stored.data_as_of
            by_segment.update(stored.by_segment)
        else:
            sql = plan.sql()
            parameters = plan.sql_parameters(
                experiment=experiment.key, since=since, until=until, dimension=dimension
            )
            by_segment.update(plan.decode(warehouse.query_arrow(sql, parameters).to_pylist()))
    totals = {name: _totals(rows) for name, rows in by_segment.items()}
    bounds: dict[str, Any] = {"since": since, "until": until}
    totals.update(_per_metric(warehouse, experiment, plan.others, **bounds))
    if dimension:
        by_segment.update(
            _per_metric(warehouse, experiment, plan.others, segment=True, dimension=dimension, **bounds)
        )
    if cuped:
        adjusted = [m for m in metrics if m.type is not MetricType.RATIO and m.name not in adjusted_sums]
        totals.update(
            _per_metric(warehouse, experiment, adjusted, cuped=True, covariate_days=covariate_days, **bounds)
        )
        totals.update(adjusted_sums)
    return totals, by_segment if dimension else {}, data_as_of


def fetch_metric_sums(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    *,
    since: datetime,
    until: datetime,
    cuped: bool = False,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
) -> dict[str, list[VariationSums]]:
    """Metric name → per-variation sums, for every metric the experiment analyses (``cuped``: binomial
    and mean metrics with their pre-exposure covariate sums)."""
    totals, _, _ = fetch_experiment_sums(
        warehouse, experiment, since=since, until=until, cuped=cuped, covariate_days=covariate_days
    )
    return totals


def fetch_segment_sums(
    warehouse: Warehouse, experiment: ExperimentSpec, *, dimension: str, since: datetime, until: datetime
) -> dict[str, SegmentRows]:
    """Metric name → (segment value, per-variation sums) rows, by exposure attribute ``dimension``."""
    if not dimension:
        raise ValidationError("--segment needs an attribute name")
    bounds: dict[str, Any] = {"since": since, "until": until}
    return fetch_experiment_sums(warehouse, experiment, dimension=dimension, **bounds)[1]
