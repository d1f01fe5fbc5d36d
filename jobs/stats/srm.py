"""Sample ratio mismatch: Pearson's chi-square goodness of fit of observed units against the configured split.

    χ² = Σ_i (o_i − e_i)² / e_i,   e_i = N · w_i / Σw,   df = k − 1,   p = P(χ²_df ≥ χ²)

An SRM (p below ~0.001) means the assignment or the logging is broken and the results are not to be
trusted (Kohavi, Tang & Xu 2020, ch. 21; Fabijan et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.stats.results import StatsErrorCode
from xpcore.errors import ValidationError

__all__ = ["SrmResult", "sample_ratio_mismatch"]


@dataclass(frozen=True, slots=True)
class SrmResult:
    """The chi-square statistic and its p-value, or why there is none."""

    chi_square: float | None
    """Pearson's χ² statistic."""
    p_value: float | None
    """P(χ²_{k−1} ≥ observed); small means mismatch."""
    error: StatsErrorCode | None = None
    """``empty_variation`` when no unit at all was observed."""


def sample_ratio_mismatch(counts: Sequence[int], weights: Sequence[float]) -> SrmResult:
    """Chi-square goodness of fit of ``counts`` (units per variation) against ``weights`` (expected split).

    Weights need not sum to 1; they are normalised. Every weight must be positive: a variation that
    should receive no traffic does not belong in the test.
    """
    from scipy import special

    if len(counts) != len(weights):
        raise ValidationError(f"weights has {len(weights)} entries but there are {len(counts)} variations")
    if len(counts) < 2:
        raise ValidationError("an SRM check needs at least 2 variations")
    for weight in weights:
        if not (math.isfinite(weight) and weight > 0):
            raise ValidationError(f"weights must be positive numbers, got {list(weights)!r}")
    for count in counts:
        if count < 0:
            raise ValidationError(f"unit counts must be >= 0, got {list(counts)!r}")
    total = sum(counts)
    if total == 0:
        return SrmResult(None, None, StatsErrorCode.empty_variation)
    weight_total = math.fsum(weights)
    chi_square = 0.0
    for count, weight in zip(counts, weights, strict=True):
        expected = total * weight / weight_total
        chi_square += (count - expected) ** 2 / expected
    return SrmResult(chi_square, float(special.chdtrc(len(counts) - 1, chi_square)))
