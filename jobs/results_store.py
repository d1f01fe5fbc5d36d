"""The warehouse side of results: sums from ClickHouse, snapshots into ``xp.results``, the stats job.

- :func:`compute_experiment_result`: one experiment, fresh from ``xp.unit_exposures`` and
  ``xp.attributed_events`` (``sql/queries/results_metric_sums.sql``, one query per metric);
- :func:`store_results`: one row per experiment × metric × variation in ``xp.results``, stamped with
  the run's ``computed_at`` (an insert-dedup token per run and experiment: a retried insert is a no-op);
- :func:`run_stats`: ``xp jobs run stats``, every running experiment of the registry.

Errors: warehouse errors propagate (:class:`~xpstream.errors.TransientError` / ``TerminalError``);
degenerate data gives coded results (see :mod:`jobs.results`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import DEFAULT_METRICS
from jobs.results import (
    ExperimentResult,
    VariationSums,
    analyze_experiment,
    analyzed_metrics,
    metric_query_parameters,
)
from jobs.stats.results import Method
from xpstream.warehouse import load_query

if TYPE_CHECKING:
    import pyarrow as pa

    from assignment.registry import ExperimentSpec
    from xpstream.config import CoreSettings
    from xpstream.warehouse import Warehouse

__all__ = [
    "EPOCH",
    "compute_experiment_result",
    "fetch_metric_sums",
    "results_table",
    "run_stats",
    "store_results",
]

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default start of the analysis window: every exposure."""

METRIC_SUMS_QUERY = "results_metric_sums"


def fetch_metric_sums(
    warehouse: Warehouse, experiment: ExperimentSpec, *, since: datetime, until: datetime
) -> dict[str, list[VariationSums]]:
    """Metric name → per-variation sums, for every metric the experiment analyses."""
    sql = load_query(METRIC_SUMS_QUERY)
    catalog = {m.name: m for m in (*DEFAULT_METRICS, *experiment.metrics.definitions)}
    sums: dict[str, list[VariationSums]] = {}
    for metric, _role in analyzed_metrics(experiment):
        parameters = metric_query_parameters(
            metric, catalog, experiment=experiment.key, since=since, until=until
        )
        rows = warehouse.query_arrow(sql, parameters).to_pylist()
        sums[metric.name] = [VariationSums.from_row(row) for row in rows]
    return sums


def compute_experiment_result(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    computed_at: datetime | None = None,
    method: Method = "sequential",
    alpha: float = 0.05,
) -> ExperimentResult:
    """Fresh results of one experiment over units first exposed in ``[since, until)`` (default: all, now)."""
    computed_at = computed_at or datetime.now(UTC)
    since = since or EPOCH
    until = until or computed_at
    sums = fetch_metric_sums(warehouse, experiment, since=since, until=until)
    return analyze_experiment(
        experiment,
        sums,
        computed_at=computed_at,
        since=since,
        until=until,
        method=method,
        alpha=alpha,
    )


def _rows(result: ExperimentResult) -> list[dict[str, Any]]:
    rows = []
    for metric in result.metrics:
        for variant in metric.variants:
            fields = variant.to_json()
            statistic: Any = variant.statistic
            numerator = getattr(statistic, "numerator", None)
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
                    "sum": float(numerator.sum if numerator else statistic.sum),
                    "sum_squares": float(numerator.sum_squares if numerator else statistic.sum_squares),
                    "denominator_sum": float(denominator.sum if denominator else 0.0),
                    "denominator_sum_squares": float(denominator.sum_squares if denominator else 0.0),
                    "cross_sum": float(getattr(statistic, "cross_sum", 0.0)),
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


def run_stats(
    settings: CoreSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    method: Method = "sequential",
    registry_timeout: float = 10.0,
) -> list[ExperimentResult]:
    """``xp jobs run stats``: results of every running experiment, stored as one ``xp.results`` snapshot."""
    from xpstream.registry_topic import read_registry
    from xpstream.warehouse import open_warehouse

    snapshot = read_registry(settings, timeout=registry_timeout)
    experiments = snapshot.running_experiments()
    computed_at = datetime.now(UTC)
    warehouse = open_warehouse(settings)
    try:
        results = [
            compute_experiment_result(
                warehouse, experiment, since=since, until=until, computed_at=computed_at, method=method
            )
            for experiment in experiments
        ]
        rows = store_results(warehouse, results)
    finally:
        warehouse.close()
    logger.info("stored results", extra={"experiments": len(results), "rows": rows})
    return results
