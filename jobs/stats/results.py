"""What a test returns: one frozen result type for every method, with a coded error instead of an exception.

A computation that cannot be done on the data it was given (an empty variation, zero variance, a relative
lift over a zero control mean) is not a bug: a results page with 60 cells must still render the other 59.
Such cells carry ``error`` (a :class:`StatsErrorCode`) and ``None`` numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from assignment.analysis_block import AnalysisMethod

__all__ = ["Difference", "EffectResult", "Method", "RelativeInterval", "StatsErrorCode"]

Difference = Literal["absolute", "relative"]
"""Absolute: ``μ_b − μ_a``. Relative: ``(μ_b − μ_a) / μ_a`` (a lift; 0.05 means +5 %)."""

Method = AnalysisMethod
"""Welch t-test, Gaussian Bayesian, always-valid confidence sequence, or a group-sequential design with
Lan–DeMets alpha spending (O'Brien–Fleming or Pocock type) over planned looks: the one list, declared in
:mod:`assignment.analysis_block`."""

RelativeInterval = Literal["fieller", "delta"]
"""How a relative lift's interval is formed: Fieller's (calibrated; the default) or the delta method's
``Δ ± c·se`` with the estimated ratio plugged into se (gbstats; too narrow in the tails at small counts)."""


class StatsErrorCode(enum.StrEnum):
    """Why a result has no numbers. The values are the strings that appear in JSON output."""

    empty_variation = "empty_variation"
    """A variation (control or treatment) has no units."""
    insufficient_data = "insufficient_data"
    """Fewer than 2 units in a variation: a sample variance needs n ≥ 2."""
    zero_variance = "zero_variance"
    """The estimate's variance is 0 (e.g. nobody converted in either arm): nothing to test."""
    zero_control_mean = "zero_control_mean"
    """A relative difference was asked for but the control mean is 0."""
    zero_denominator = "zero_denominator"
    """A ratio metric's denominator sums to 0 in a variation: the ratio is undefined."""
    non_finite_sums = "non_finite_sums"
    """The metric's sums are not finite numbers (a stored value like 1.7e308 overflowed Σ or Σ², or a NaN
    or infinity reached the warehouse): the metric cannot be analysed; every other metric still is."""
    invalid_sums = "invalid_sums"
    """The metric's sums are finite but no set of real values could produce them (float overflow or
    cancellation at extreme magnitudes): the metric cannot be analysed; every other metric still is."""


@dataclass(frozen=True, slots=True)
class EffectResult:
    """One treatment compared with control, by one method."""

    method: Method
    """Which test produced this result."""
    difference: Difference
    """Absolute or relative difference."""
    estimate: float | None
    """Point estimate of the difference (posterior mean for Bayesian)."""
    standard_error: float | None
    """Standard error of the estimate (delta method where needed)."""
    ci_low: float | None
    """Lower end of the (1 − α) confidence / credible interval or confidence sequence. None without an
    error: a relative lift whose Fieller interval is unbounded (the control mean is not distinguishable
    from 0 at this level)."""
    ci_high: float | None
    """Upper end of the interval (None as for ``ci_low``)."""
    p_value: float | None = None
    """Two-sided p-value (frequentist; always-valid p-value for sequential; None for Bayesian)."""
    chance_to_win: float | None = None
    """Posterior probability that the treatment is better, respecting the metric direction (Bayesian)."""
    risk: float | None = None
    """Bayesian expected loss of shipping the treatment, in the units of the estimate."""
    error: StatsErrorCode | None = None
    """Why the numbers are missing, or None."""

    @classmethod
    def failed(cls, method: Method, difference: Difference, error: StatsErrorCode) -> EffectResult:
        """A result that carries only its error code."""
        return cls(method, difference, None, None, None, None, error=error)

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (equivalent to p < α for frequentist, sequential and group-sequential
        results; an unbounded Fieller set, both ends None, is never significant)."""
        if self.error is not None or self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0
