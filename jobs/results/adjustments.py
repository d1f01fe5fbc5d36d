"""What ``xp results`` does on top of plain comparisons: CUPED per metric and multiple-comparison corrections.

Pure. :func:`cuped_decision` says whether a metric is CUPED-adjusted and, when it is not although the
plan asked for it, why (so the output can say so); :func:`adjusted_p_values` corrects the p-values of
every treatment of every analysed metric as one family (Holm–Bonferroni or Benjamini–Hochberg).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import MetricDefinition, MetricType
from jobs.stats import benjamini_hochberg, holm_bonferroni

if TYPE_CHECKING:
    from jobs.analysis_plan import Correction
    from jobs.results.rows import VariationSums

__all__ = [
    "NOT_REQUESTED",
    "NO_CUPED",
    "CupedDecision",
    "adjusted_p_values",
    "cuped_decision",
]

NOT_REQUESTED = "not requested (analysis.cuped / --cuped)"


@dataclass(frozen=True, slots=True)
class CupedDecision:
    """Whether one metric's results are CUPED-adjusted, and the reason when they are not."""

    applied: bool
    reason: str | None = None
    theta: float | None = None
    """θ pooled over every variation (set once the statistics are built)."""
    covariate_days: float | None = None
    units_with_covariate: int | None = None
    """Units with at least one event in the pre-exposure window (all variations)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "theta": self.theta,
            "covariate_days": self.covariate_days,
            "units_with_covariate": self.units_with_covariate,
        }


NO_CUPED = CupedDecision(False, NOT_REQUESTED)


def cuped_decision(
    metric: MetricDefinition, requested: bool, rows: Sequence[VariationSums], covariate_days: float
) -> CupedDecision:
    """Apply CUPED to ``metric`` given its query rows? Not for ratio metrics, nor without covariate data."""
    if not requested:
        return NO_CUPED
    if metric.type is MetricType.RATIO:
        return CupedDecision(False, "ratio metrics are not CUPED-adjusted (binomial and mean only)")
    if not rows or not all(row.has_covariate for row in rows):
        return CupedDecision(False, "no covariate was computed for this metric")
    with_covariate = sum(row.units_with_covariate for row in rows)
    if with_covariate == 0:
        return CupedDecision(
            False,
            f"no unit has an event in the {covariate_days:g}-day pre-exposure window "
            "(nothing to adjust with)",
            covariate_days=covariate_days,
            units_with_covariate=0,
        )
    return CupedDecision(True, None, None, covariate_days, with_covariate)


def adjusted_p_values(p_values: Sequence[float | None], correction: Correction) -> list[float | None]:
    """``p_values`` (None: no p-value, e.g. a coded error or a Bayesian result) adjusted as one family.

    None stays None and is not counted in the family; ``correction == "none"`` returns them unchanged.
    """
    if correction == "none":
        return list(p_values)
    present = [p for p in p_values if p is not None]
    if not present:
        return list(p_values)
    adjusted = iter(holm_bonferroni(present) if correction == "holm" else benjamini_hochberg(present))
    return [None if p is None else next(adjusted) for p in p_values]
