"""The results contract: what ``xp results --format json`` prints and ``xp.results`` stores.

:class:`ExperimentAnalysis` (one experiment at ``computed_at``) holds one :class:`MetricResult` per
analysed metric, each one :class:`VariantResult` per variation (control first); ``to_json`` is the
documented contract (docs/statistics.md). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import MetricDefinition
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import NO_CUPED, CupedDecision
from jobs.stats import EffectResult, Statistic
from jobs.stats.quantiles import QuantileStatistic
from jobs.stats.results import Method, StatsErrorCode

__all__ = ["SRM_THRESHOLD", "ExperimentAnalysis", "MetricResult", "VariantResult", "corrected_significance"]

SRM_THRESHOLD = 0.001
"""An SRM p-value below this flags the experiment (Kohavi, Tang & Xu 2020, ch. 21)."""


def corrected_significance(
    effect: EffectResult | None, p_value_adjusted: float | None, alpha: float | None
) -> bool:
    """Significant by the method and, when a correction gave ``p_value_adjusted`` (with ``alpha``), by
    that too; never for control (no ``effect``)."""
    if effect is None:
        return False
    if p_value_adjusted is not None and alpha is not None:
        return effect.significant and p_value_adjusted < alpha
    return effect.significant


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variation of one metric: control carries no estimate."""

    variation_id: int
    key: str
    name: str
    units: int
    mean: float | None
    statistic: Statistic | QuantileStatistic | None
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
        return corrected_significance(self.effect, self.p_value_adjusted, self.alpha)

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


def _quantile_fields(metric: MetricDefinition) -> dict[str, Any]:
    """A quantile metric's ``quantile`` (ν) and ``per``; nothing for other metrics (decision 0083)."""
    if metric.quantile is None or metric.per is None:
        return {}
    return {"quantile": metric.quantile, "per": metric.per.value}


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
            **_quantile_fields(self.metric),
            "variants": [v.to_json() for v in self.variants],
            "cuped": self.cuped.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ExperimentAnalysis:
    """The analysed results of one experiment at ``computed_at``: every metric's comparison, the SRM
    check, the plan, the optional segment breakdown (not :class:`assignment.results.ExperimentResult`,
    which is one SDK evaluation)."""

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
