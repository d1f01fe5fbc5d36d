"""Quantile metrics (p50, p90, p99 …): the variance of a sample quantile from its order-statistic interval.

A variation is reduced to a :class:`QuantileStatistic`: the sample ν-quantile ``q̂`` of ``n`` values and
the values at the two levels of the binomial order-statistic interval (Price & Bonett 2001; the method
GrowthBook documents for quantile metrics)

    ν ∓ z·√(ν(1 − ν)/n*),     z = Φ⁻¹(0.975)

where ``n*`` is the count the levels were computed from (normally ``n``; ClickHouse needs the levels as
constants, so they come from a first counting pass). The width of that interval estimates the quantile's
standard error without a density estimate (gbstats ``QuantileStatistic.variance_init``):

    Var(q̂) = (n*/n) · ((n − 1)/n) · ((upper − lower) / (2z))²

**Per-event quantiles** (``per: event``) take the quantile over events, but events of one unit are
correlated and units are what is randomised. :class:`ClusterSums` carries, per unit, ``s_i`` = its events
at or below ``q̂`` and ``m_i`` = its events; the share of events at or below ``q̂`` is the ratio
``Σs / Σm`` whose delta-method (cluster-robust) variance replaces the i.i.d. ``ν(1 − ν)/n`` (gbstats
``QuantileClusteredStatistic``):

    Var_cluster(q̂) = Var_iid(q̂) · Var(Σs/Σm) / (ν(1 − ν)/n)

The two arms are independent, so a difference has ``Var = Var(q̂_b) + Var(q̂_a)``; :func:`quantile_moments`
returns :class:`~jobs.stats.effects.EffectMoments` (with Fieller's terms for a relative lift), and every
method of :mod:`jobs.stats.analysis` (frequentist, sequential, group-sequential, Bayesian) works from them
unchanged. ``n`` in the moments is the arm's units (the clusters for per-event quantiles).

Degenerate inputs give coded results: fewer values than the order-statistic interval needs
(``n ≤ z²·ν/(1−ν)`` or ``n ≤ z²·(1−ν)/ν``: p99 needs ≥ 381 values) is ``insufficient_data``; an interval
of width 0 (ties: the quantile sits on a value many units share) is ``zero_variance``.

References: R. M. Price & D. G. Bonett, *Estimating the variance of a sample median*, J. Statist. Comput.
Simul. 68(3), 2001; GrowthBook, *Quantile metrics* (docs.growthbook.io/statistics/quantile) and gbstats
``packages/stats/gbstats/models/statistics.py`` (``QuantileStatistic``, ``QuantileClusteredStatistic``).
Decision 0083. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jobs.stats.effects import EffectMoments, FiellerTerms
from jobs.stats.results import Difference, StatsErrorCode
from xpcore.errors import ValidationError

__all__ = [
    "LEVEL_Z",
    "ClusterSums",
    "QuantileStatistic",
    "check_level",
    "clustered_quantile_statistic",
    "order_statistic_levels",
    "quantile_moments",
    "quantile_statistic",
]

LEVEL_Z = 1.959963984540054
"""Φ⁻¹(0.975): the order-statistic interval whose width estimates the standard error is always the 95 %
one (as in gbstats); α of the test only sets the critical value applied to that standard error."""


def check_level(nu: float) -> None:
    """ν must lie strictly between 0 and 1."""
    if not (isinstance(nu, int | float) and math.isfinite(nu) and 0 < nu < 1):
        raise ValidationError(f"quantile must be between 0 and 1 (exclusive), got {nu!r}")


def order_statistic_levels(nu: float, n: int) -> tuple[float, float]:
    """The levels ``ν ∓ z·√(ν(1−ν)/n)`` of the 95 % order-statistic interval, clipped to [0, 1]."""
    check_level(nu)
    if n < 1:
        return 0.0, 1.0
    half = LEVEL_Z * math.sqrt(nu * (1 - nu) / n)
    return max(0.0, nu - half), min(1.0, nu + half)


@dataclass(frozen=True, slots=True)
class ClusterSums:
    """Per-event quantiles: sums over a variation's units of ``s_i`` (its events at or below the sample
    quantile) and ``m_i`` (its events)."""

    units: int
    """Units (clusters) with at least one event."""
    below_sum: float
    """Σ s_i."""
    below_sum_squares: float
    """Σ s_i²."""
    events_sum: float
    """Σ m_i (the events: equals the statistic's ``n``)."""
    events_sum_squares: float
    """Σ m_i²."""
    cross_sum: float
    """Σ s_i·m_i."""

    def share_variance(self) -> float:
        """Delta-method variance of ``Σs / Σm`` over the units (0 when it cannot be formed)."""
        k = self.units
        if k <= 1 or self.events_sum <= 0:
            return 0.0
        mu_s, mu_m = self.below_sum / k, self.events_sum / k
        correction = k / (k - 1)
        var_s = (self.below_sum_squares / k - mu_s * mu_s) * correction
        var_m = (self.events_sum_squares / k - mu_m * mu_m) * correction
        cov = (self.cross_sum / k - mu_s * mu_m) * correction
        return (var_s - 2 * mu_s * cov / mu_m + mu_s * mu_s * var_m / (mu_m * mu_m)) / (k * mu_m * mu_m)


@dataclass(frozen=True, slots=True)
class QuantileStatistic:
    """One variation of a quantile metric (see the module docstring for the formulas)."""

    n: int
    """Values the quantile is over: units (``per: unit``) or events (``per: event``)."""
    nu: float
    """The quantile level, e.g. 0.9 for p90."""
    quantile: float
    """The sample ν-quantile ``q̂``."""
    lower: float
    """The value at level ``ν − z·√(ν(1−ν)/n*)``."""
    upper: float
    """The value at level ``ν + z·√(ν(1−ν)/n*)``."""
    n_star: int | None = None
    """The count the two levels were computed from; None: ``n``."""
    clusters: ClusterSums | None = None
    """Per-event quantiles: the per-unit sums of the cluster-robust variance; None for ``per: unit``."""

    def __post_init__(self) -> None:
        check_level(self.nu)
        if self.n < 0 or (self.n_star is not None and self.n_star < 1):
            raise ValidationError(f"n must be >= 0 and n_star >= 1, got n={self.n}, n_star={self.n_star}")
        for name in ("quantile", "lower", "upper"):
            if not math.isfinite(getattr(self, name)):
                raise ValidationError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        if not self.lower <= self.quantile <= self.upper:
            raise ValidationError(
                f"need lower <= quantile <= upper, got {self.lower!r}, {self.quantile!r}, {self.upper!r}"
            )

    @property
    def mean(self) -> float:
        """The arm's value (the sample quantile; named ``mean`` like every other statistic's value)."""
        return self.quantile

    @property
    def units(self) -> int:
        """The units the arm's randomisation is over: ``n``, or the clusters of a per-event quantile."""
        return self.clusters.units if self.clusters is not None else self.n

    def error(self) -> StatsErrorCode | None:
        """Why this arm cannot be tested, or None."""
        if self.n == 0:
            return StatsErrorCode.empty_variation
        z2 = LEVEL_Z * LEVEL_Z
        if self.n <= z2 * self.nu / (1 - self.nu) or self.n <= z2 * (1 - self.nu) / self.nu:
            return StatsErrorCode.insufficient_data
        if self.clusters is not None and self.clusters.units < 2:
            return StatsErrorCode.insufficient_data
        return None

    def variance(self) -> float:
        """Var(q̂): i.i.d. from the interval's width, scaled by the cluster design effect for events."""
        n = self.n
        if n <= 1:
            return 0.0
        n_star = self.n_star if self.n_star is not None else n
        width = (self.upper - self.lower) / (2 * LEVEL_Z)
        iid = (n_star / n) * ((n - 1) / n) * width * width
        if self.clusters is None:
            return iid
        return iid * self.clusters.share_variance() / (self.nu * (1 - self.nu) / n)


def quantile_moments(
    control: QuantileStatistic, treatment: QuantileStatistic, difference: Difference
) -> EffectMoments:
    """Δ = q̂_b − q̂_a (absolute) or (q̂_b − q̂_a)/q̂_a (relative, delta method; Fieller's terms attached)."""
    if difference not in ("absolute", "relative"):
        raise ValidationError(f"difference must be 'absolute' or 'relative', got {difference!r}")
    if control.nu != treatment.nu:
        raise ValidationError(f"both arms need the same quantile level, got {control.nu} and {treatment.nu}")
    n_a, n_b = control.units, treatment.units
    for code in (StatsErrorCode.empty_variation, StatsErrorCode.insufficient_data):
        if code in (control.error(), treatment.error()):
            return EffectMoments(math.nan, math.nan, math.nan, math.nan, n_a, n_b, code)
    var_a, var_b = control.variance(), treatment.variance()
    q_a, q_b = control.quantile, treatment.quantile
    delta = q_b - q_a
    fieller = None
    if difference == "absolute":
        estimate, share_a, share_b = delta, var_a, var_b
    else:
        if q_a == 0:
            return EffectMoments(
                math.nan, math.nan, math.nan, math.nan, n_a, n_b, StatsErrorCode.zero_control_mean
            )
        estimate = delta / q_a
        share_a = var_a * (q_b * q_b) / (q_a**4)
        share_b = var_b / (q_a * q_a)
        fieller = FiellerTerms(
            difference=delta,
            baseline=q_a,
            variance_control=var_a,
            variance_treatment=var_b,
            covariance=var_a,
            variance_baseline=var_a,
        )
    variance = share_a + share_b
    if not variance > 0 or not math.isfinite(variance):
        return EffectMoments(math.nan, math.nan, math.nan, math.nan, n_a, n_b, StatsErrorCode.zero_variance)
    return EffectMoments(estimate, variance, share_a, share_b, n_a, n_b, fieller=fieller)


def _order_statistic(ordered: np.ndarray, level: float) -> float:
    """The smallest value whose empirical CDF reaches ``level`` (Hyndman & Fan type 1)."""
    index = max(0, min(len(ordered) - 1, math.ceil(level * len(ordered)) - 1))
    return float(ordered[index])


def quantile_statistic(values: Sequence[float] | np.ndarray, nu: float) -> QuantileStatistic:
    """A variation's statistic from its raw per-unit values (exact order statistics)."""
    check_level(nu)
    ordered = np.sort(np.asarray(values, dtype=float))
    if not np.all(np.isfinite(ordered)):
        raise ValidationError("values must be finite numbers")
    n = len(ordered)
    if n == 0:
        return QuantileStatistic(0, nu, 0.0, 0.0, 0.0)
    low, high = order_statistic_levels(nu, n)
    return QuantileStatistic(
        n, nu, _order_statistic(ordered, nu), _order_statistic(ordered, low), _order_statistic(ordered, high)
    )


def clustered_quantile_statistic(
    values: Sequence[float] | np.ndarray, units: Sequence[object] | np.ndarray, nu: float
) -> QuantileStatistic:
    """A variation's per-event statistic from raw events: ``values[i]`` belongs to unit ``units[i]``."""
    values_array = np.asarray(values, dtype=float)
    if len(values_array) != len(units):
        raise ValidationError(f"{len(values_array)} values but {len(units)} units")
    plain = quantile_statistic(values_array, nu)
    if plain.n == 0:
        return plain
    _, cluster = np.unique(np.asarray(units), return_inverse=True)
    below = np.bincount(cluster, weights=(values_array <= plain.quantile).astype(float))
    events = np.bincount(cluster).astype(float)
    sums = ClusterSums(
        units=len(events),
        below_sum=float(below.sum()),
        below_sum_squares=float((below * below).sum()),
        events_sum=float(events.sum()),
        events_sum_squares=float((events * events).sum()),
        cross_sum=float((below * events).sum()),
    )
    return QuantileStatistic(plain.n, nu, plain.quantile, plain.lower, plain.upper, clusters=sums)
