"""The warehouse side of results: sums from ClickHouse, snapshots into ``xp.results``, the stats job.

- :func:`compute_experiment_result`: one experiment, fresh from ``xp.unit_exposures`` and
  ``xp.attributed_events`` (``sql/queries/results_metric_sums.sql``, one query per metric; with CUPED,
  ``results_metric_cuped_sums.sql`` for binomial and mean metrics, the covariate from ``xp.events``;
  with ``segment``, ``results_metric_segment_sums.sql`` as well); the metrics of the one shared scan
  (``BatchPlan.sql()``) are read from ``xp.unit_values`` instead, refreshed first (:mod:`jobs.unit_values`,
  decision 0028), unless ``XP_RESULTS_UNIT_VALUES=false`` or the window ends before the newest event;
  with ``until`` now, as of their last refresh while it is younger than ``XP_RESULTS_MAX_STALENESS_SECONDS``
  (the result's ``data_as_of``; ``fresh=True`` and the stats job always refresh);
- :func:`store_results`: one row per experiment × metric × variation in ``xp.results``, stamped with
  the run's ``computed_at`` (an insert-dedup token per run and experiment: a retried insert is a no-op);
- :func:`run_stats`: ``xp jobs run stats``, every running experiment of the registry.

Errors: warehouse errors propagate (:class:`~xpcore.errors.TransientError` / ``TerminalError``);
degenerate data gives coded results (see :mod:`jobs.results`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import DEFAULT_METRICS, MetricDefinition, MetricType
from jobs.analysis_plan import AnalysisPlan, plan_from_metadata
from jobs.results import (
    ExperimentResult,
    VariationSums,
    analyze_experiment,
    analyzed_metrics,
    metric_query_parameters,
)
from jobs.results.batch import batch_plan
from jobs.results.segments import DEFAULT_TOP, SegmentRows, analyze_segments
from jobs.stats.results import Method
from jobs.unit_values import UnitValuesSettings, fetch_unit_value_sums
from jobs.unit_values.plan import unit_values_plan
from xpcore.errors import TerminalError, ValidationError
from xpcore.warehouse import load_query

if TYPE_CHECKING:
    import pyarrow as pa

    from assignment.registry import ExperimentSpec
    from xpcore.config import CoreSettings
    from xpcore.warehouse import Warehouse

__all__ = [
    "EPOCH",
    "compute_experiment_result",
    "covariate_days_of",
    "experiment_plan",
    "fetch_experiment_sums",
    "fetch_metric_sums",
    "fetch_segment_sums",
    "results_table",
    "run_stats",
    "store_results",
]

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default start of the analysis window: every exposure."""

METRIC_SUMS_QUERY = "results_metric_sums"
EXPERIMENT_SUMS_QUERY = "results_experiment_sums"
CUPED_SUMS_QUERY = "results_metric_cuped_sums"
SEGMENT_SUMS_QUERY = "results_metric_segment_sums"
DEFAULT_COVARIATE_DAYS = 14.0
"""Pre-exposure window of the CUPED covariate when no setting says otherwise (``XP_ETL_COVARIATE_DAYS``)."""


def _cuped_parameters(parameters: dict[str, Any], covariate_days: float) -> dict[str, Any]:
    """``results_metric_cuped_sums``' parameters: side a of the metric, the window, the covariate window."""
    kept = ("experiment", "since", "until", "event_a", "aggregation_a", "property_a", "window_a_seconds")
    return {**{k: parameters[k] for k in kept}, "covariate_seconds": covariate_days * 86400.0}


def _per_metric(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    metrics: Sequence[MetricDefinition],
    query: str,
    *,
    since: datetime,
    until: datetime,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
    dimension: str = "",
) -> dict[str, list[Any]]:
    """One ``query`` per metric: VariationSums rows (or (segment, VariationSums) for the segment query)."""
    if not metrics:
        return {}
    sql = load_query(query)
    catalog = _catalog(experiment)
    found: dict[str, list[Any]] = {}
    for metric in metrics:
        parameters = metric_query_parameters(
            metric, catalog, experiment=experiment.key, since=since, until=until
        )
        if query == CUPED_SUMS_QUERY:
            parameters = _cuped_parameters(parameters, covariate_days)
        elif query == SEGMENT_SUMS_QUERY:
            parameters = {**parameters, "dimension": dimension}
        rows = warehouse.query_arrow(sql, parameters).to_pylist()
        if query == SEGMENT_SUMS_QUERY:
            found[metric.name] = [(str(row["segment"]), VariationSums.from_row(row)) for row in rows]
        else:
            found[metric.name] = [VariationSums.from_row(row) for row in rows]
    return found


def _catalog(experiment: ExperimentSpec) -> dict[str, MetricDefinition]:
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

    One ``results_experiment_sums`` scan answers every metric it can (:mod:`jobs.results.batch`); the
    others take one ``results_metric_sums`` (+ ``results_metric_segment_sums``) query each. With
    ``cuped``, binomial and mean metrics are also queried with their covariate
    (``results_metric_cuped_sums``), which replaces their totals.

    With ``unit_values`` on (default: ``XP_RESULTS_UNIT_VALUES``), the metrics of that one scan (and
    their CUPED covariates) come from ``xp.unit_values`` instead, refreshed first
    (:mod:`jobs.unit_values`, decision 0028): the same numbers; the scan when they cannot answer. Unless
    ``fresh``, an ``open_window`` (``until`` is "now") reads them as of their last refresh while it is
    younger than ``XP_RESULTS_MAX_STALENESS_SECONDS``.
    """
    metrics = [metric for metric, _role in analyzed_metrics(experiment)]
    plan = batch_plan(metrics, _catalog(experiment))
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
    totals.update(_per_metric(warehouse, experiment, plan.others, METRIC_SUMS_QUERY, **bounds))
    if dimension:
        by_segment.update(
            _per_metric(warehouse, experiment, plan.others, SEGMENT_SUMS_QUERY, dimension=dimension, **bounds)
        )
    if cuped:
        adjusted = [m for m in metrics if m.type is not MetricType.RATIO and m.name not in adjusted_sums]
        totals.update(
            _per_metric(
                warehouse, experiment, adjusted, CUPED_SUMS_QUERY, covariate_days=covariate_days, **bounds
            )
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
) -> ExperimentResult:
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


def _rows(result: ExperimentResult) -> list[dict[str, Any]]:
    rows = []
    for metric in result.metrics:
        for variant in metric.variants:
            fields = variant.to_json()
            statistic: Any = variant.statistic
            numerator = getattr(statistic, "numerator", None) or getattr(statistic, "metric", None)
            denominator = getattr(statistic, "denominator", None)
            rows.append(
                {
                    "computed_at": result.computed_at,
                    "experiment_key": result.experiment,
                    "metric": metric.metric.name,
                    "metric_type": metric.metric.type.value,
                    "role": metric.role,
                    "method": result.method,
                    "variation_id": variant.variation_id,
                    "variation_key": variant.key,
                    "variation_name": variant.name,
                    "units": variant.units,
                    "mean": fields["mean"],
                    "estimate": fields["estimate"],
                    "ci_low": fields["ci_low"],
                    "ci_high": fields["ci_high"],
                    "p_value": fields["p_value"],
                    "chance_to_win": fields["chance_to_win"],
                    "significant": fields["significant"],
                    "error": fields["error"] or "",
                    "srm_p_value": result.srm_p_value,
                    "window_since": result.since,
                    "window_until": result.until,
                    # a metric not analysed (error non_finite_sums / invalid_sums) stores 0 sums
                    "sum": float(numerator.sum if numerator else getattr(statistic, "sum", 0.0)),
                    "sum_squares": float(
                        numerator.sum_squares if numerator else getattr(statistic, "sum_squares", 0.0)
                    ),
                    "denominator_sum": float(denominator.sum if denominator else 0.0),
                    "denominator_sum_squares": float(denominator.sum_squares if denominator else 0.0),
                    "cross_sum": float(getattr(statistic, "cross_sum", 0.0)) if denominator else 0.0,
                }
            )
    return rows


def results_table(results: Sequence[ExperimentResult]) -> pa.Table:
    """The ``xp.results`` rows of ``results`` as an Arrow table (column types as in 0004_results.sql)."""
    import pyarrow as pa

    timestamp = pa.timestamp("ms", tz="UTC")
    schema = pa.schema(
        [
            pa.field("computed_at", timestamp, nullable=False),
            pa.field("experiment_key", pa.string(), nullable=False),
            pa.field("metric", pa.string(), nullable=False),
            pa.field("metric_type", pa.string(), nullable=False),
            pa.field("role", pa.string(), nullable=False),
            pa.field("method", pa.string(), nullable=False),
            pa.field("variation_id", pa.uint16(), nullable=False),
            pa.field("variation_key", pa.string(), nullable=False),
            pa.field("variation_name", pa.string(), nullable=False),
            pa.field("units", pa.uint64(), nullable=False),
            *(
                pa.field(name, pa.float64())
                for name in ("mean", "estimate", "ci_low", "ci_high", "p_value", "chance_to_win")
            ),
            pa.field("significant", pa.bool_(), nullable=False),
            pa.field("error", pa.string(), nullable=False),
            pa.field("srm_p_value", pa.float64()),
            pa.field("window_since", timestamp, nullable=False),
            pa.field("window_until", timestamp, nullable=False),
            *(
                pa.field(name, pa.float64(), nullable=False)
                for name in ("sum", "sum_squares", "denominator_sum", "denominator_sum_squares", "cross_sum")
            ),
        ]
    )
    rows = [row for result in results for row in _rows(result)]
    return pa.Table.from_pylist(rows, schema=schema)


def store_results(warehouse: Warehouse, results: Sequence[ExperimentResult]) -> int:
    """Insert one snapshot per result into ``xp.results``; returns the rows written."""
    written = 0
    for result in results:
        table = results_table([result])
        token = f"results:{result.experiment}:{result.computed_at.isoformat()}"
        written += warehouse.insert_arrow("xp.results", table, dedup_token=token)
    return written


def covariate_days_of(settings: CoreSettings) -> float:
    """The CUPED covariate window: ``XP_ETL_COVARIATE_DAYS`` (the same window as the ETL's covariate)."""
    days = getattr(settings, "etl_covariate_days", None)
    if days is None:
        from xpcore.config import EtlSettings

        days = EtlSettings().etl_covariate_days
    return float(days)


def run_stats(
    settings: CoreSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    method: Method | None = None,
    registry_timeout: float = 10.0,
) -> list[ExperimentResult]:
    """``xp jobs run stats``: results of every running experiment, stored as one ``xp.results`` snapshot.

    Each experiment is analysed as its ``analysis:`` block says (``method`` overrides its method). An
    experiment whose analysis fails terminally (e.g. a misconfigured metric) is logged and skipped; the
    others are stored, then a :class:`TerminalError` names the failed ones (the job exits non-zero).
    """
    from assignment.registry_topic import read_registry
    from xpcore.warehouse import open_warehouse

    snapshot = read_registry(settings, timeout=registry_timeout)
    experiments = snapshot.running_experiments()
    computed_at = datetime.now(UTC)
    covariate_days = covariate_days_of(settings)
    warehouse = open_warehouse(settings)
    results: list[ExperimentResult] = []
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
