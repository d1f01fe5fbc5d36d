"""Planning: units and days needed to detect a minimum effect, per analysis method (``xp plan``).

Each treatment is compared with control; with ``variations`` arms on an even split, ``n`` units per
variation give ``se = √(2σ²/n)`` for the absolute difference (σ² the metric's per-unit variance). The
smallest ``n`` whose power reaches the target is found per method:

- ``frequentist``: ``Φ(δ/se − z_{1−α/2}) + Φ(−δ/se − z_{1−α/2})`` (:func:`jobs.stats.power.power`), ≈ the
  closed form ``n = 2σ²(z_{1−α/2} + z_{power})²/δ²``;
- ``sequential``: the confidence sequence with N* tuned to the plan itself (N* = all variations' units,
  as ``planned_units`` tunes it, decision 0063): power at the planned horizon;
- ``group_sequential_obf`` / ``group_sequential_pocock``: Lan–DeMets spending over ``planned_looks``
  equally spaced looks; the power is the probability of crossing a boundary by the last look for the
  drift ``δ/se`` (:func:`jobs.stats.group_sequential.crossing_probability`). The drift that gives the
  target power is solved once, then ``n = 2σ²·drift²/δ²``.

Days are ``⌈variations · n / units_per_day⌉`` (units_per_day: new units a day, from history). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from assignment.analysis_block import GROUP_SEQUENTIAL_METHODS, METHODS
from jobs.stats.group_sequential import (
    crossing_probability,
    group_sequential_boundaries,
    spending_of,
)
from jobs.stats.power import power
from jobs.stats.validation import check_alpha, check_positive
from xpcore.errors import ValidationError

__all__ = ["PLANNED_METHODS", "MethodPlan", "plan_method", "units_needed"]

PLANNED_METHODS = ("frequentist", "sequential", "group_sequential_obf", "group_sequential_pocock")
"""Methods with a power calculation (the Bayesian method has no error rates to plan for)."""
_MAX_UNITS = 10**12


@dataclass(frozen=True, slots=True)
class MethodPlan:
    """Units and days one method needs."""

    method: str
    units_per_variation: int
    total_units: int
    """All variations."""
    days: int | None
    """Days at the historical traffic (None when the traffic is unknown or 0)."""
    power: float
    """Power at ``units_per_variation`` (≥ the target)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "units_per_variation": self.units_per_variation,
            "total_units": self.total_units,
            "days": self.days,
            "power": self.power,
        }


def _check(effect: float, unit_variance: float, alpha: float, target_power: float, variations: int) -> None:
    check_alpha(alpha)
    check_positive("unit_variance", unit_variance)
    if not (math.isfinite(effect) and effect != 0):
        raise ValidationError(
            f"the minimum detectable effect must be a finite non-zero number, got {effect!r}"
        )
    if not (0 < target_power < 1) or target_power <= alpha:
        raise ValidationError(f"target power must lie between alpha and 1, got {target_power!r}")
    if isinstance(variations, bool) or not isinstance(variations, int) or variations < 2:
        raise ValidationError(f"an experiment needs at least 2 variations, got {variations!r}")


def _smallest(reaches: Any) -> int:
    """The smallest n ≥ 2 with ``reaches(n)`` (monotone), by doubling then bisection."""
    low, high = 1, 2
    while not reaches(high):
        low, high = high, high * 2
        if high > _MAX_UNITS:
            raise ValidationError("the effect is too small to detect with any realistic sample size")
    while high - low > 1:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return high


def _group_sequential_drift(method: str, alpha: float, target_power: float, looks: int) -> tuple[float, Any]:
    from scipy import optimize

    times = tuple(k / looks for k in range(1, looks + 1))
    boundaries = group_sequential_boundaries(times, alpha, spending_of(method))  # type: ignore[arg-type]

    def power_at(drift: float) -> float:
        return crossing_probability(times, boundaries, drift)

    drift = optimize.brentq(lambda d: power_at(d) - target_power, 0.0, 40.0, xtol=1e-10)
    return drift, power_at


def units_needed(
    method: str,
    effect: float,
    unit_variance: float,
    *,
    alpha: float = 0.05,
    target_power: float = 0.8,
    variations: int = 2,
    planned_looks: int = 5,
) -> tuple[int, float]:
    """(units per variation, power there) for ``method`` to detect the absolute difference ``effect``."""
    _check(effect, unit_variance, alpha, target_power, variations)
    if method not in PLANNED_METHODS:
        known = ", ".join(m for m in METHODS if m in PLANNED_METHODS)
        raise ValidationError(f"no power calculation for method {method!r} (planned: {known})")
    if method == "frequentist":
        n = _smallest(lambda m: power(effect, unit_variance, max(m, 2), alpha=alpha) >= target_power)
        n = max(n, 2)
        return n, power(effect, unit_variance, n, alpha=alpha)
    if method == "sequential":

        def sequential_power(m: int) -> float:
            m = max(m, 2)
            return power(
                effect, unit_variance, m, alpha=alpha, method="sequential", tuning_parameter=variations * m
            )

        n = max(_smallest(lambda m: sequential_power(m) >= target_power), 2)
        return n, sequential_power(n)
    assert method in GROUP_SEQUENTIAL_METHODS
    if isinstance(planned_looks, bool) or not isinstance(planned_looks, int) or not 1 <= planned_looks <= 50:
        raise ValidationError(f"planned_looks must be a whole number from 1 to 50, got {planned_looks!r}")
    drift, power_at = _group_sequential_drift(method, alpha, target_power, planned_looks)
    n = max(math.ceil(2 * unit_variance * drift * drift / (effect * effect) - 1e-9), 2)
    return n, power_at(abs(effect) / math.sqrt(2 * unit_variance / n))


def plan_method(
    method: str,
    effect: float,
    unit_variance: float,
    *,
    units_per_day: float | None,
    alpha: float = 0.05,
    target_power: float = 0.8,
    variations: int = 2,
    planned_looks: int = 5,
) -> MethodPlan:
    """:func:`units_needed` with the total over every variation and the days at ``units_per_day``."""
    n, achieved = units_needed(
        method,
        effect,
        unit_variance,
        alpha=alpha,
        target_power=target_power,
        variations=variations,
        planned_looks=planned_looks,
    )
    total = n * variations
    days = math.ceil(total / units_per_day) if units_per_day and units_per_day > 0 else None
    return MethodPlan(method, n, total, days, achieved)
