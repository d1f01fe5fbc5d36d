"""Experiment results: per-variation sums from ClickHouse → the statistics engine → the results contract.

Pure (no I/O): the warehouse side is :mod:`jobs.results.store`. The flow, per running experiment:

1. :func:`metric_query_parameters` binds one metric to ``sql/queries/results_metric_sums.sql``, which
   returns one :class:`VariationSums` row per variation (``units``, ``Σa``, ``Σa²``, and for ratio
   metrics the denominator ``Σb``, ``Σb²`` and ``Σa·b``);
2. :func:`statistics_for` turns them into engine statistics (variations with no unit get ``n = 0``);
3. :func:`analyze_experiment` compares every treatment with control (:func:`jobs.stats.compare_variations`,
   relative lift) and checks the split (:func:`jobs.stats.sample_ratio_mismatch`);
4. :meth:`ExperimentResult.to_json` is the ``xp results --format json`` contract (docs/statistics.md).

The experiment's :class:`~jobs.analysis_plan.AnalysisPlan` (method, α, CUPED, correction) drives steps
2–3: with ``cuped`` the rows come from ``results_metric_cuped_sums.sql`` (covariate sums included) and
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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import Aggregation, MetricDefinition, MetricType, metric_roles, metrics_for
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import NO_CUPED, CupedDecision, adjusted_p_values, cuped_decision
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
from jobs.stats.results import Difference, Method, StatsErrorCode
from xpcore.errors import ValidationError

__all__ = [
    "SRM_THRESHOLD",
    "ExperimentResult",
    "MetricResult",
    "VariantResult",
    "VariationSums",
    "analyze_experiment",
    "analyzed_metrics",
    "metric_query_parameters",
    "statistics_for",
]

logger = logging.getLogger(__name__)

SRM_THRESHOLD = 0.001
"""An SRM p-value below this flags the experiment (Kohavi, Tang & Xu 2020, ch. 21)."""


@dataclass(frozen=True, slots=True)
class VariationSums:
    """One row of ``results_metric_sums``: the unit-level sums of one variation."""

    variation_id: int
    units: int
    """Units in the analysis population (first exposure here, one variation, not overridden)."""
    sum_a: float = 0.0
    """Σ of the per-unit metric value (ratio: numerator)."""
    sum_a_squares: float = 0.0
    sum_b: float = 0.0
    """Ratio metrics: Σ of the per-unit denominator; 0 otherwise."""
    sum_b_squares: float = 0.0
    cross_sum: float = 0.0
    """Σ a·b (ratio metrics)."""
    has_covariate: bool = False
    """The row came from ``results_metric_cuped_sums`` (the fields below are set)."""
    sum_x: float = 0.0
    """CUPED: Σ of the per-unit pre-exposure covariate."""
    sum_x_squares: float = 0.0
    cross_sum_ax: float = 0.0
    """CUPED: Σ a·x."""
    units_with_covariate: int = 0
    """CUPED: units with ≥ 1 event in the pre-exposure window."""

    @property
    def n(self) -> int:
        """Units (the name :func:`jobs.stats.top_segments` ranks by)."""
        return self.units

    @property
    def finite(self) -> bool:
        """Every sum is a finite number (a poisoned value makes Σ or Σ² infinite or NaN)."""
        return all(
            math.isfinite(value)
            for value in (
                self.sum_a,
                self.sum_a_squares,
                self.sum_b,
                self.sum_b_squares,
                self.cross_sum,
                self.sum_x,
                self.sum_x_squares,
                self.cross_sum_ax,
            )
        )

    def __add__(self, other: VariationSums) -> VariationSums:
        """Two disjoint sets of units of the same variation (segments folded into "other")."""
        return VariationSums(
            self.variation_id,
            self.units + other.units,
            self.sum_a + other.sum_a,
            self.sum_a_squares + other.sum_a_squares,
            self.sum_b + other.sum_b,
            self.sum_b_squares + other.sum_b_squares,
            self.cross_sum + other.cross_sum,
            self.has_covariate and other.has_covariate,
            self.sum_x + other.sum_x,
            self.sum_x_squares + other.sum_x_squares,
            self.cross_sum_ax + other.cross_sum_ax,
            self.units_with_covariate + other.units_with_covariate,
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VariationSums:
        """From a row of any ``results_metric_*sums`` query (columns it lacks are 0; extra ones ignored)."""
        has_covariate = "sum_x" in row
        return cls(
            variation_id=int(row["variation_id"]),
            units=int(row["units"]),
            sum_a=float(row["sum_a"]),
            sum_a_squares=float(row["sum_a_squares"]),
            sum_b=float(row.get("sum_b", 0.0)),
            sum_b_squares=float(row.get("sum_b_squares", 0.0)),
            cross_sum=float(row.get("cross_sum", 0.0)),
            has_covariate=has_covariate,
            sum_x=float(row.get("sum_x", 0.0)),
            sum_x_squares=float(row.get("sum_x_squares", 0.0)),
            cross_sum_ax=float(row.get("cross_sum_ax", 0.0)),
            units_with_covariate=int(row.get("units_with_covariate", 0)),
        )


def _side(metric: MetricDefinition, where: str) -> tuple[str, str, str, float]:
    """(event, aggregation, property, window seconds; 0 = none) of an event metric."""
    if metric.type is MetricType.RATIO or metric.event_name is None or metric.aggregation is None:
        raise ValidationError(f"{where}: metric {metric.name!r} is not an event metric")
    field = metric.value_field or "value"
    prop = field.removeprefix("properties.") if field.startswith("properties.") else ""
    window = metric.window_hours * 3600.0 if metric.window_hours is not None else 0.0
    return metric.event_name, metric.aggregation.value, prop, window


def metric_query_parameters(
    metric: MetricDefinition,
    catalog: Mapping[str, MetricDefinition],
    *,
    experiment: str,
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    """The bound parameters of ``results_metric_sums`` for ``metric`` (``catalog``: ratio parts by name).

    ValidationError for a ratio whose parts are not event metrics (a ratio of ratios).
    """
    where = f"experiment {experiment!r}"
    if metric.type is MetricType.RATIO:
        numerator = catalog.get(metric.numerator or "")
        denominator = catalog.get(metric.denominator or "")
        if numerator is None or denominator is None:
            raise ValidationError(f"{where}: ratio metric {metric.name!r} refers to an unknown metric")
        a, b = _side(numerator, where), _side(denominator, where)
    else:
        a, b = _side(metric, where), ("", Aggregation.COUNT.value, "", 0.0)
    return {
        "experiment": experiment,
        "since": since,
        "until": until,
        "event_a": a[0],
        "aggregation_a": a[1],
        "property_a": a[2],
        "window_a_seconds": a[3],
        "event_b": b[0],
        "aggregation_b": b[1],
        "property_b": b[2],
        "window_b_seconds": b[3],
    }


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


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variation of one metric: control carries no estimate."""

    variation_id: int
    key: str
    name: str
    units: int
    mean: float | None
    statistic: Statistic | None
    """None when the metric could not be analysed (``error`` says why)."""
    effect: EffectResult | None = None
    """None for control."""
    p_value_adjusted: float | None = None
    """The p-value after the plan's multiple-comparison correction (None: no correction or no p-value)."""
    alpha: float | None = None
    """Set with ``p_value_adjusted``: ``significant`` is then ``p_value_adjusted < alpha``."""
    error: StatsErrorCode | None = None
    """Why the whole metric has no numbers (control included), e.g. ``non_finite_sums``; None otherwise."""

    @property
    def significant(self) -> bool:
        if self.effect is None:
            return False
        if self.p_value_adjusted is not None and self.alpha is not None:
            return self.effect.significant and self.p_value_adjusted < self.alpha
        return self.effect.significant

    def to_json(self) -> dict[str, Any]:
        effect = self.effect
        error = effect.error.value if effect is not None and effect.error else None
        if self.error is not None:
            error = self.error.value
        if error is None and self.units == 0:
            error = "empty_variation"
        return {
            "variation_id": self.variation_id,
            "key": self.key,
            "name": self.name,
            "units": self.units,
            "mean": self.mean,
            "estimate": effect.estimate if effect else None,
            "ci_low": effect.ci_low if effect else None,
            "ci_high": effect.ci_high if effect else None,
            "p_value": effect.p_value if effect else None,
            "chance_to_win": effect.chance_to_win if effect else None,
            "significant": self.significant,
            "error": error,
            "p_value_adjusted": self.p_value_adjusted,
        }


@dataclass(frozen=True, slots=True)
class MetricResult:
    """Every variation of one metric, control first."""

    metric: MetricDefinition
    role: str
    """primary, secondary or guardrail."""
    variants: tuple[VariantResult, ...]
    cuped: CupedDecision = NO_CUPED

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric.name,
            "type": self.metric.type.value,
            "role": self.role,
            "higher_is_better": self.metric.higher_is_better,
            "variants": [v.to_json() for v in self.variants],
            "cuped": self.cuped.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """The results of one experiment at ``computed_at``."""

    experiment: str
    computed_at: datetime
    method: Method
    alpha: float
    since: datetime
    until: datetime
    srm_p_value: float | None
    srm_error: str | None
    metrics: tuple[MetricResult, ...]
    plan: AnalysisPlan | None = None
    """What the results were computed with (None: ``method``/``alpha`` only, no CUPED, no correction)."""
    segments: Any = None
    """A :class:`jobs.results.segments.SegmentBreakdown` when ``xp results --segment`` asked for one."""
    data_as_of: datetime | None = None
    """Events stored before this time are folded in (None: ``min(until, computed_at)``, read live);
    earlier when read from unit values as of their last refresh (decision 0028, staleness bound)."""

    @property
    def srm_flagged(self) -> bool:
        """The split does not match the configured weights (p < :data:`SRM_THRESHOLD`)."""
        return self.srm_p_value is not None and self.srm_p_value < SRM_THRESHOLD

    def to_json(self) -> dict[str, Any]:
        """The ``xp results --format json`` contract."""
        return {
            "experiment": self.experiment,
            "srm_p_value": self.srm_p_value,
            "srm_error": self.srm_error,
            "computed_at": self.computed_at.isoformat(),
            "data_as_of": (self.data_as_of or min(self.until, self.computed_at)).isoformat(),
            "method": self.method,
            "alpha": self.alpha,
            "metrics": [m.to_json() for m in self.metrics],
            "analysis": (self.plan or AnalysisPlan(self.method, self.alpha)).to_json(),
            "segments": self.segments.to_json() if self.segments is not None else None,
        }


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
) -> ExperimentResult:
    """Results of ``experiment`` (an :class:`assignment.registry.ExperimentSpec`) from ``sums`` (metric
    name → rows of ``results_metric_sums`` or ``results_metric_cuped_sums``; a metric without an entry is
    analysed as empty). ``plan`` (default: ``method``, ``alpha``, no CUPED, no correction) decides."""
    if plan is None:
        plan = AnalysisPlan(method=method, alpha=alpha)
    method, alpha = plan.method, plan.alpha
    variations = experiment.variations
    ids = [v.id for v in variations]
    metrics: list[MetricResult] = []
    population: list[int] | None = None
    for metric, role in analyzed_metrics(experiment):
        rows = sums.get(metric.name, ())
        if population is None:
            units = {row.variation_id: row.units for row in rows}
            population = [units.get(i, 0) for i in ids]
        metrics.append(
            _analyze_metric(
                experiment.key, metric, role, variations, rows, plan=plan, covariate_days=covariate_days
            )
        )
    metrics = _corrected(metrics, plan)
    if population is None:  # an experiment always has a metric (defaults); be safe anyway
        population = [0] * len(ids)
    srm = sample_ratio_mismatch(population, [max(v.weight, 1e-12) for v in variations])
    return ExperimentResult(
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
) -> MetricResult:
    """One metric, every treatment against control; poisoned sums give that metric a coded error."""
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
        statistics, method=plan.method, alpha=plan.alpha, higher_is_better=metric.higher_is_better
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
