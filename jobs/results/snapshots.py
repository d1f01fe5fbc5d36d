"""Results snapshots: one row per experiment × metric × variation in ``xp.results`` (0004_results.sql).

:func:`store_results` stamps each snapshot with its run's ``computed_at`` (an insert-dedup token per run
and experiment: a retried insert is a no-op); :func:`results_table` is the Arrow form of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.results.contract import ExperimentAnalysis
    from xpcore.warehouse import Warehouse

__all__ = ["results_table", "store_results"]


def _rows(result: ExperimentAnalysis) -> list[dict[str, Any]]:
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


def results_table(results: Sequence[ExperimentAnalysis]) -> pa.Table:
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


def store_results(warehouse: Warehouse, results: Sequence[ExperimentAnalysis]) -> int:
    """Insert one snapshot per result into ``xp.results``; returns the rows written."""
    written = 0
    for result in results:
        table = results_table([result])
        token = f"results:{result.experiment}:{result.computed_at.isoformat()}"
        written += warehouse.insert_arrow("xp.results", table, dedup_token=token)
    return written
