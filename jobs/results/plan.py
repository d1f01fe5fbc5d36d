"""What ``xp plan`` computes from a metric's history row: its per-unit mean and variance, the traffic, and
the units and days each method needs for a minimum detectable effect (decision 0086). Pure.

The history row is :func:`jobs.results.metric_sql.history.history_sums_sql`'s. For a ratio metric
(Σa / Σb per variation) the per-unit variance is the delta method's ``Var(a − R·b) / b̄²`` with
``R = Σa / Σb``: the variance of the ratio's estimate times the units, like the results' (effects.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from assignment.metrics_catalog import MetricDefinition, MetricType, metric_roles, metrics_for
from jobs.stats.group_sequential import DEFAULT_PLANNED_LOOKS
from jobs.stats.planning import PLANNED_METHODS, plan_method
from jobs.stats.sufficient import centered_sum_of_squares
from xpcore.errors import ValidationError

__all__ = ["MetricHistory", "metric_history", "plan_experiment", "plan_metric"]


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """A metric over the history window: units seen, their mean value and per-unit variance."""

    units: int
    units_per_day: float
    mean: float | None
    unit_variance: float | None
    """None when there are fewer than 2 units or a ratio's denominator is 0."""


def metric_history(row: Mapping[str, Any], metric: MetricDefinition, lookback_days: float) -> MetricHistory:
    """The history of ``metric`` from the query row over ``lookback_days`` days."""
    n = int(row["units"])
    per_day = n / lookback_days if lookback_days > 0 else 0.0
    if n < 2:
        return MetricHistory(n, per_day, None, None)
    sum_a, squares_a = float(row["sum_a"]), float(row["sum_a_squares"])
    if metric.type is not MetricType.RATIO:
        variance = centered_sum_of_squares(n, sum_a, squares_a) / (n - 1)
        return MetricHistory(n, per_day, sum_a / n, variance)
    sum_b, squares_b, cross = float(row["sum_b"]), float(row["sum_b_squares"]), float(row["cross_sum"])
    if sum_b == 0:
        return MetricHistory(n, per_day, None, None)
    ratio, b_bar = sum_a / sum_b, sum_b / n
    var_a = centered_sum_of_squares(n, sum_a, squares_a) / (n - 1)
    var_b = centered_sum_of_squares(n, sum_b, squares_b) / (n - 1)
    covariance = (cross - sum_a * sum_b / n) / (n - 1)
    variance = max(0.0, var_a - 2 * ratio * covariance + ratio * ratio * var_b) / (b_bar * b_bar)
    return MetricHistory(n, per_day, ratio, variance)


def plan_metric(
    history: MetricHistory,
    *,
    mde: float,
    relative: bool,
    alpha: float,
    target_power: float,
    variations: int,
    planned_looks: int,
) -> dict[str, Any]:
    """The JSON of one metric's plan: its history and, per method, units and days (or the reason none)."""
    answer: dict[str, Any] = {
        "history_units": history.units,
        "units_per_day": history.units_per_day,
        "mean": history.mean,
        "unit_variance": history.unit_variance,
        "effect": None,
        "methods": [],
        "error": None,
    }
    if history.mean is None or history.unit_variance is None:
        answer["error"] = "not enough history: fewer than 2 units (or a ratio's denominator is 0)"
        return answer
    if not history.unit_variance > 0:
        answer["error"] = "the metric was constant over the history window (variance 0)"
        return answer
    effect = mde * abs(history.mean) if relative else mde
    if not (math.isfinite(effect) and effect != 0):
        answer["error"] = "the metric's historical mean is 0: give an absolute effect (--absolute)"
        return answer
    answer["effect"] = effect
    answer["methods"] = [
        plan_method(
            method,
            effect,
            history.unit_variance,
            units_per_day=history.units_per_day,
            alpha=alpha,
            target_power=target_power,
            variations=variations,
            planned_looks=planned_looks,
        ).to_json()
        for method in PLANNED_METHODS
    ]
    return answer


def plan_experiment(
    warehouse: Any,
    experiment: Any,
    analysis: Any,
    *,
    mde: float,
    relative: bool = True,
    target_power: float = 0.8,
    lookback_days: float = 14.0,
    until: datetime,
    metric_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The plan of ``experiment`` (an ``ExperimentSpec``) under its ``analysis`` (an ``AnalysisPlan``).

    Its named metrics (primary first; ``metric_names`` to choose), each from the history window
    ``[until − lookback_days, until)``; ``recommended_planned_units``: the total units the experiment's
    own method needs for its first metric (the frequentist figure for a Bayesian experiment).
    """
    from jobs.results.metric_sql.history import history_parameters, history_sums_sql

    if not (math.isfinite(lookback_days) and 0 < lookback_days <= 3660):
        raise ValidationError(f"lookback must be between 0 and 3660 days, got {lookback_days!r}")
    catalog = {m.name: m for m in metrics_for(experiment)}
    named = list(dict.fromkeys(m.name for role in metric_roles(experiment).values() for m in role))
    for name in metric_names:
        if name not in catalog:
            raise ValidationError(
                f"experiment {experiment.key!r} has no metric {name!r} (has: {', '.join(named)})"
            )
    chosen = list(metric_names) or named
    since = until - timedelta(days=lookback_days)
    looks = analysis.planned_looks or DEFAULT_PLANNED_LOOKS
    variations = len(experiment.variations)
    metrics = []
    for name in chosen:
        metric = catalog[name]
        parameters = history_parameters(metric, catalog, since=since, until=until)
        (row,) = warehouse.query_arrow(history_sums_sql(), parameters, read_only=True).to_pylist()
        history = metric_history(row, metric, lookback_days)
        planned = plan_metric(
            history,
            mde=mde,
            relative=relative,
            alpha=analysis.alpha,
            target_power=target_power,
            variations=variations,
            planned_looks=looks,
        )
        metrics.append({"metric": name, "type": metric.type.value, **planned})
    own = analysis.method if analysis.method in PLANNED_METHODS else "frequentist"
    first = metrics[0]["methods"] if metrics else []
    recommended = next((m["total_units"] for m in first if m["method"] == own), None)
    return {
        "experiment": experiment.key,
        "variations": variations,
        "method": analysis.method,
        "alpha": analysis.alpha,
        "power": target_power,
        "mde": mde,
        "relative": relative,
        "planned_looks": looks,
        "history": {"since": since.isoformat(), "until": until.isoformat(), "days": lookback_days},
        "metrics": metrics,
        "recommended_planned_units": recommended,
        "yaml": f"planned_units: {recommended}" if recommended is not None else None,
    }
