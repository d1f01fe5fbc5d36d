"""A quantile metric's per-variation statistics from the warehouse (the adapter of
:mod:`jobs.results.metric_sql.quantile`; decision 0083).

Two queries: the counts per variation, then the t-digest sketch with the order-statistic levels computed
from the smallest non-empty variation's count (``n*``; one pair of constant levels serves every variation,
and :class:`~jobs.stats.quantiles.QuantileStatistic` corrects each variation's variance by ``n*/n``).
Overridden and multiply-exposed units are excluded exactly as in every other results query. Warehouse
errors propagate (:class:`~xpcore.errors.TransientError` / ``TerminalError``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import MetricDefinition, MetricType
from jobs.results.analysis import analyzed_metrics
from jobs.results.metric_sql.quantile import QuantilePer, quantile_counts_sql, quantile_sketch_sql
from jobs.results.metric_sql.scan import metric_parameters
from jobs.stats.quantiles import ClusterSums, QuantileStatistic, check_level, order_statistic_levels
from xpcore.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.warehouse import Warehouse

__all__ = ["fetch_experiment_quantiles", "fetch_quantile_statistics"]

_SIDE_A = ("experiment", "since", "until", "event_a", "aggregation_a", "property_a", "window_a_seconds")


def fetch_quantile_statistics(
    warehouse: Warehouse,
    experiment: str,
    metric: MetricDefinition,
    *,
    nu: float,
    per: QuantilePer,
    variation_ids: list[int],
    since: datetime,
    until: datetime,
) -> list[QuantileStatistic]:
    """The ν-quantile of ``metric``'s value (per unit: the unit's aggregated value; per event: each event's
    value field) per variation, in ``variation_ids`` order (a variation without data: ``n = 0``)."""
    check_level(nu)
    if per not in ("unit", "event"):
        raise ValidationError(f"per must be 'unit' or 'event', got {per!r}")
    bound = metric_parameters(metric, {}, experiment=experiment, since=since, until=until)
    used = _SIDE_A if per == "unit" else tuple(k for k in _SIDE_A if k != "aggregation_a")
    parameters: dict[str, Any] = {key: bound[key] for key in used}
    counts = warehouse.query_arrow(quantile_counts_sql(per), parameters).to_pylist()
    present = [int(row["n"]) for row in counts if int(row["n"]) > 0]
    by_id: dict[int, dict[str, Any]] = {}
    n_star = min(present) if present else 0
    if n_star > 0:
        low, high = order_statistic_levels(nu, n_star)
        sketch = {**parameters, "nu": nu, "level_low": low, "level_high": high}
        by_id = {
            int(row["variation_id"]): row
            for row in warehouse.query_arrow(quantile_sketch_sql(per), sketch).to_pylist()
        }
    statistics = []
    for variation_id in variation_ids:
        row = by_id.get(variation_id)
        if row is None or int(row["n"]) == 0:
            statistics.append(QuantileStatistic(0, nu, 0.0, 0.0, 0.0))
            continue
        clusters = None
        if per == "event":
            clusters = ClusterSums(
                int(row["units"]),
                float(row["below_sum"]),
                float(row["below_sum_squares"]),
                float(row["events_sum"]),
                float(row["events_sum_squares"]),
                float(row["cross_sum"]),
            )
        value, lower, upper = (float(row[k]) for k in ("quantile_value", "quantile_lower", "quantile_upper"))
        statistics.append(
            QuantileStatistic(
                int(row["n"]),
                nu,
                value,
                min(lower, value),
                max(upper, value),
                n_star=n_star,
                clusters=clusters,
            )
        )
    return statistics


def fetch_experiment_quantiles(
    warehouse: Warehouse, experiment: ExperimentSpec, *, since: datetime, until: datetime
) -> dict[str, list[QuantileStatistic]]:
    """Metric name → per-variation statistics (the experiment's order), for every quantile metric the
    experiment analyses (two queries each; none for an experiment without quantile metrics)."""
    ids = [v.id for v in experiment.variations]
    found = {}
    for metric, _role in analyzed_metrics(experiment):
        if metric.type is not MetricType.QUANTILE or metric.quantile is None or metric.per is None:
            continue
        found[metric.name] = fetch_quantile_statistics(
            warehouse,
            experiment.key,
            metric,
            nu=metric.quantile,
            per=metric.per.value,
            variation_ids=ids,
            since=since,
            until=until,
        )
    return found
