"""One quantile metric of an experiment, analysed: per-variation :class:`QuantileStatistic` → the results
contract's :class:`MetricResult` (decision 0083). Pure; the statistics come from
:mod:`jobs.results.quantile_stats`.

CUPED does not apply to quantiles (the plan's CUPED is reported as not applied); ``units`` is the units of
the variation (per event: those with an event), ``mean`` the sample quantile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assignment.metrics_catalog import MetricDefinition
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import NO_CUPED, CupedDecision
from jobs.results.contract import MetricResult, VariantResult
from jobs.stats.analysis import compare_variations
from jobs.stats.quantiles import QuantileStatistic

__all__ = ["NOT_FOR_QUANTILES", "quantile_metric_result"]

NOT_FOR_QUANTILES = "not applied: quantile metric"
"""The CUPED reason of a quantile metric when the plan asks for CUPED."""


def quantile_metric_result(
    metric: MetricDefinition,
    role: str,
    variations: Sequence[Any],
    statistics: Sequence[QuantileStatistic] | None,
    *,
    plan: AnalysisPlan,
    information_fraction: float | None = None,
) -> MetricResult:
    """Every treatment against control; ``statistics`` None (not fetched, e.g. a segment breakdown): every
    variation empty, so every treatment carries ``empty_variation``."""
    nu = metric.quantile if metric.quantile is not None else 0.5
    stats = (
        list(statistics)
        if statistics is not None
        else [QuantileStatistic(0, nu, 0.0, 0.0, 0.0)] * len(variations)
    )
    effects = compare_variations(
        stats,
        method=plan.method,
        alpha=plan.alpha,
        higher_is_better=metric.higher_is_better,
        planned_units=plan.planned_units,
        planned_looks=plan.planned_looks,
        information_fraction=information_fraction,
    )
    variants = tuple(
        VariantResult(
            variation.id,
            variation.key,
            variation.name,
            statistic.units,
            statistic.quantile if statistic.n else None,
            statistic,
            None if index == 0 else effects[index - 1],
        )
        for index, (variation, statistic) in enumerate(zip(variations, stats, strict=True))
    )
    cuped = CupedDecision(False, NOT_FOR_QUANTILES) if plan.cuped else NO_CUPED
    return MetricResult(metric, role, variants, cuped)
