"""The rows results are computed from: the unit-level sums of one variation (of one segment).

Every results query (:mod:`jobs.results.metric_sql`: the live scan, ``xp.unit_values``) returns rows
that become :class:`VariationSums`; sums add up, so segments and "other" are exact. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SegmentRows", "VariationSums"]


@dataclass(frozen=True, slots=True)
class VariationSums:
    """One row of a results query (:mod:`jobs.results.metric_sql`): the unit-level sums of one variation."""

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
    """The row came from a CUPED query (the fields below are set)."""
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
        """From a row of any per-variation sums query (columns it lacks are 0; extra ones ignored)."""
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


SegmentRows = Sequence[tuple[str, VariationSums]]
"""Per-segment rows of one metric: (segment value, sums of one variation)."""
