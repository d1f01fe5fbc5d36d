"""The analysis of an experiment: per-variation sums → the statistics engine → the results contract.

Pure (no I/O): the sums come from :mod:`jobs.results.sums`. The flow, per running experiment:

1. the results queries (:mod:`jobs.results.metric_sql`) return one
   :class:`~jobs.results.rows.VariationSums` row per variation (``units``, ``Σa``, ``Σa²``, and for ratio
   metrics the denominator ``Σb``, ``Σb²`` and ``Σa·b``);
2. :func:`statistics_for` turns them into engine statistics (variations with no unit get ``n = 0``);
3. :func:`analyze_experiment` compares every treatment with control (:func:`jobs.stats.compare_variations`,
   relative lift) and checks the split (:func:`jobs.stats.sample_ratio_mismatch`);
4. :meth:`~jobs.results.contract.ExperimentAnalysis.to_json` is the ``xp results --format json``
   contract (docs/statistics.md).

The experiment's :class:`~jobs.analysis_plan.AnalysisPlan` (method, α, CUPED, correction) drives steps
2–3: with ``cuped`` the rows carry the pre-exposure covariate sums and
binomial/mean metrics become :class:`~jobs.stats.CupedStatistic`; with a correction, every treatment's
p-value of every metric is adjusted as one family (``p_value_adjusted``; ``significant`` follows it).

Degenerate data (no units, nobody converted) gives coded errors in the result, never an exception. So do
poisoned sums (decision 0037): a metric whose sums are not finite (``non_finite_sums``) or that no real
values could produce (``invalid_sums``) gets that code on every variation, for that metric alone; every
other metric, the SRM check and every other experiment are computed as usual.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import MetricDefinition, MetricType, metric_roles, metrics_for
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import NO_CUPED, CupedDecision, adjusted_p_values, cuped_decision
from jobs.results.contract import ExperimentAnalysis, MetricResult, VariantResult
from jobs.results.quantile_metric import quantile_metric_result
from jobs.results.rows import VariationSums
from jobs.stats import (
    CupedStatistic,
    EffectResult,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
    ValueSums,
    compare_variations,
    pooled_theta,
    sample_ratio_mismatch,
)
from jobs.stats.quantiles import QuantileStatistic
from jobs.stats.results import Difference, Method, StatsErrorCode
from xpcore.errors import ValidationError

__all__ = ["analyze_experiment", "analyzed_metrics", "statistics_for"]

logger = logging.getLogger(__name__)


def _clean(value: float) -> float:
    """Float sums that must be ≥ 0 or integral can come back as -1e-13 or 754.9999999: tidy them."""
    return 0.0 if abs(value) < 1e-12 else value


def statistics_for(
    metric: MetricDefinition,
    variation_ids: Sequence[int],
    rows: Sequence[VariationSums],
    *,
    cuped: bool = False,
) -> list[Statistic]:
    """One engine statistic per configured variation, in ``variation_ids`` order (missing → empty).

    ``cuped``: binomial and mean metrics become :class:`CupedStatistic` (the rows must carry covariates).
    """
    by_id = {row.variation_id: row for row in rows}
    statistics: list[Statistic] = []
    for variation_id in variation_ids:
        row = by_id.get(variation_id, VariationSums(variation_id, 0))
        if cuped and metric.type is not MetricType.RATIO:
            conversions = float(round(row.sum_a)) if metric.type is MetricType.BINOMIAL else None
            statistics.append(
                CupedStatistic(
                    row.units,
                    ValueSums(
                        conversions if conversions is not None else _clean(row.sum_a),
                        conversions if conversions is not None else _clean(row.sum_a_squares),
                    ),
                    ValueSums(_clean(row.sum_x), _clean(row.sum_x_squares)),
                    _clean(row.cross_sum_ax),
                )
            )
        elif metric.type is MetricType.BINOMIAL:
            statistics.append(ProportionStatistic(row.units, float(round(row.sum_a))))
        elif metric.type is MetricType.RATIO:
            statistics.append(
                RatioStatistic(
                    row.units,
                    ValueSums(_clean(row.sum_a), _clean(row.sum_a_squares)),
                    ValueSums(_clean(row.sum_b), _clean(row.sum_b_squares)),
                    _clean(row.cross_sum),
                )
            )
        else:
            statistics.append(SampleMeanStatistic(row.units, _clean(row.sum_a), _clean(row.sum_a_squares)))
    return statistics


def analyzed_metrics(experiment: Any) -> list[tuple[MetricDefinition, str]]:
    """(metric, role) for the experiment's primary, secondary and guardrail metrics (the catalog's
    defaults when it names none), each once; ratio parts not named by the experiment are left out."""
    roles: dict[str, str] = {}
    for role, metrics in metric_roles(experiment).items():
        for metric in metrics:
            roles.setdefault(metric.name, role.removesuffix("s"))
    return [(m, roles[m.name]) for m in metrics_for(experiment) if m.name in roles]


def analyze_experiment(
    experiment: Any,
    sums: Mapping[str, Sequence[VariationSums]],
    *,
    computed_at: datetime,
    since: datetime,
    until: datetime,
    method: Method = "sequential",
    alpha: float = 0.05,
    plan: AnalysisPlan | None = None,
    covariate_days: float = 14.0,
    information_fraction: float | None = None,
    quantiles: Mapping[str, Sequence[QuantileStatistic]] | None = None,
) -> ExperimentAnalysis:
    """Results of ``experiment`` (an :class:`assignment.registry.ExperimentSpec`) from ``sums`` (metric
    name → per-variation rows, with covariate sums under CUPED; a metric without an entry is
    analysed as empty). ``plan`` (default: ``method``, ``alpha``, no CUPED, no correction) decides.
    Quantile metrics are analysed from ``quantiles`` (metric name → one statistic per variation, in the
    experiment's order; a metric without an entry is analysed as empty; decision 0083)."""
    if plan is None:
        plan = AnalysisPlan(method=method, alpha=alpha)
    method, alpha = plan.method, plan.alpha
    variations = experiment.variations
    ids = [v.id for v in variations]
    metrics: list[MetricResult] = []
    population: list[int] | None = None
    for metric, role in analyzed_metrics(experiment):
        if metric.type is MetricType.QUANTILE:
            statistics = (quantiles or {}).get(metric.name)
            metrics.append(
                quantile_metric_result(
                    metric, role, variations, statistics, plan=plan, information_fraction=information_fraction
                )
            )
            continue
        rows = sums.get(metric.name, ())
        if population is None:
            units = {row.variation_id: row.units for row in rows}
            population = [units.get(i, 0) for i in ids]
        metrics.append(
            _analyze_metric(
                experiment.key,
                metric,
                role,
                variations,
                rows,
                plan=plan,
                covariate_days=covariate_days,
                information_fraction=information_fraction,
            )
        )
    metrics = _corrected(metrics, plan)
    if population is None:  # only quantile metrics: the units of the first one
        first = next(iter(m for m in metrics if m.metric.type is MetricType.QUANTILE), None)
        population = [v.units for v in first.variants] if first is not None else [0] * len(ids)
    srm = sample_ratio_mismatch(population, [max(v.weight, 1e-12) for v in variations])
    return ExperimentAnalysis(
        experiment=experiment.key,
        computed_at=computed_at,
        method=method,
        alpha=alpha,
        since=since,
        until=until,
        srm_p_value=srm.p_value,
        srm_error=srm.error.value if srm.error else None,
        metrics=tuple(metrics),
        plan=plan,
    )


def _analyze_metric(
    experiment_key: str,
    metric: MetricDefinition,
    role: str,
    variations: Sequence[Any],
    rows: Sequence[VariationSums],
    *,
    plan: AnalysisPlan,
    covariate_days: float,
    information_fraction: float | None = None,
) -> MetricResult:
    """One metric, every treatment against control; poisoned sums give that metric a coded error.
    ``information_fraction``: the look of a group-sequential design when ``rows`` are a subset (a segment)."""
    ids = [v.id for v in variations]

    def not_analysed(why: str, code: StatsErrorCode) -> MetricResult:
        logger.warning(
            "metric %s of experiment %s %s: not analysed (%s)",
            metric.name,
            experiment_key,
            why,
            code.value,
            extra={"experiment": experiment_key, "metric": metric.name},
        )
        return _failed_metric(metric, role, variations, rows, code, plan)

    if not all(row.finite for row in rows):
        return not_analysed("has sums that are not finite numbers", StatsErrorCode.non_finite_sums)
    try:
        cuped = cuped_decision(metric, plan.cuped, rows, covariate_days)
        statistics = statistics_for(metric, ids, rows, cuped=cuped.applied)
        if cuped.applied:
            theta = pooled_theta([s for s in statistics if isinstance(s, CupedStatistic)])
            cuped = CupedDecision(True, None, theta, cuped.covariate_days, cuped.units_with_covariate)
    except ValidationError as error:
        return not_analysed(f"has impossible sums ({error})", StatsErrorCode.invalid_sums)
    effects = compare_variations(
        statistics,
        method=plan.method,
        alpha=plan.alpha,
        higher_is_better=metric.higher_is_better,
        planned_units=plan.planned_units,
        planned_looks=plan.planned_looks,
        information_fraction=information_fraction,
    )
    if not all(_finite_effect(effect) for effect in effects) or not all(
        _finite_or_nan(s.mean) for s in statistics
    ):
        return not_analysed("overflowed", StatsErrorCode.non_finite_sums)
    variants = [
        VariantResult(
            variation.id,
            variation.key,
            variation.name,
            statistic.n,
            _number(statistic.mean),
            statistic,
            None if index == 0 else effects[index - 1],
        )
        for index, (variation, statistic) in enumerate(zip(variations, statistics, strict=True))
    ]
    return MetricResult(metric, role, tuple(variants), cuped)


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _finite_or_nan(value: float) -> bool:
    """NaN means "undefined" (no units) and is shown as None; ±inf means an overflow."""
    return not math.isinf(value)


def _finite_effect(effect: EffectResult) -> bool:
    numbers = (effect.estimate, effect.standard_error, effect.ci_low, effect.ci_high, effect.p_value)
    return all(value is None or not math.isinf(value) for value in numbers)


def _failed_metric(
    metric: MetricDefinition,
    role: str,
    variations: Sequence[Any],
    rows: Sequence[VariationSums],
    error: StatsErrorCode,
    plan: AnalysisPlan,
) -> MetricResult:
    """Every variation of ``metric`` with ``error`` and no numbers (units as counted)."""
    units = {row.variation_id: row.units for row in rows}
    difference: Difference = "relative"
    variants = tuple(
        VariantResult(
            variation.id,
            variation.key,
            variation.name,
            units.get(variation.id, 0),
            None,
            None,
            None if index == 0 else EffectResult.failed(plan.method, difference, error),
            error=error,
        )
        for index, variation in enumerate(variations)
    )
    cuped = CupedDecision(False, f"not analysed: {error.value}") if plan.cuped else NO_CUPED
    return MetricResult(metric, role, variants, cuped)


def _corrected(metrics: list[MetricResult], plan: AnalysisPlan) -> list[MetricResult]:
    """Every treatment p-value of every metric adjusted as one family (``plan.correction``)."""
    if plan.correction == "none":
        return metrics
    cells = [(i, j) for i, m in enumerate(metrics) for j, v in enumerate(m.variants) if v.effect is not None]
    raw = [metrics[i].variants[j].effect.p_value for i, j in cells]  # type: ignore[union-attr]
    adjusted = dict(zip(cells, adjusted_p_values(raw, plan.correction), strict=True))
    corrected = []
    for i, metric in enumerate(metrics):
        variants = tuple(
            replace(v, p_value_adjusted=adjusted.get((i, j)), alpha=plan.alpha)
            if adjusted.get((i, j)) is not None
            else v
            for j, v in enumerate(metric.variants)
        )
        corrected.append(replace(metric, variants=variants))
    return corrected
