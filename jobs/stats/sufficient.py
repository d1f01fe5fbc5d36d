"""Sufficient statistics: the small sums ClickHouse returns per variation, and that add up.

Every statistic is a frozen dataclass of sums over units (``n``, ``sum``, ``sum_squares`` and, where a
metric involves two values per unit, the cross product). Two partial aggregates of the same variation
(two shards, two segments, two days) combine with ``+``; nothing else is needed to recombine them.

Variances are *sample* variances (divisor ``n − 1``), as in Welch's test and ``scipy.stats``. Inputs
that no set of real values could produce (a negative ``n``, ``sum_squares < sum² / n``, a proportion
above 1, a cross product that breaks Cauchy–Schwarz) raise :class:`xpcore.errors.ValidationError`
at construction: they are bugs upstream, never something to paper over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.stats.regression_adjustment import AdjustedStatistic
from xpcore.errors import ValidationError

__all__ = [
    "CupedStatistic",
    "ProportionStatistic",
    "RatioStatistic",
    "SampleMeanStatistic",
    "Statistic",
    "ValueSums",
    "centered_sum_of_squares",
    "pooled_theta",
]

# Relative tolerance for float cancellation in ``sum_squares − sum² / n`` and cross products.
_RELATIVE_TOLERANCE = 1e-9


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError(f"n must be an integer, got {n!r}")
    if n < 0:
        raise ValidationError(f"n must be >= 0, got {n}")


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {value!r}")


def centered_sum_of_squares(n: int, total: float, sum_squares: float, name: str = "sum_squares") -> float:
    """``Σ(x − x̄)² = sum_squares − sum² / n``; tiny negative float noise becomes 0, real negatives fail."""
    if n == 0:
        if total != 0 or sum_squares != 0:
            raise ValidationError(f"{name}: n is 0 but sums are not ({total}, {sum_squares})")
        return 0.0
    centered = sum_squares - total * total / n
    if centered < 0:
        if -centered <= _RELATIVE_TOLERANCE * max(abs(sum_squares), total * total / n, 1e-300):
            return 0.0
        raise ValidationError(
            f"{name} ({sum_squares!r}) is smaller than sum²/n ({total * total / n!r}): "
            "not the sums of one set of values"
        )
    if centered <= _RELATIVE_TOLERANCE * 1e-3 * abs(sum_squares):
        return 0.0  # cancellation noise of a constant column
    return centered


def _centered_cross(n: int, sum_x: float, sum_y: float, cross_sum: float) -> float:
    return cross_sum - sum_x * sum_y / n if n else 0.0


def _check_cauchy_schwarz(centered_x: float, centered_y: float, centered_xy: float, name: str) -> None:
    bound = math.sqrt(centered_x * centered_y)
    if abs(centered_xy) > bound * (1 + 1e-6) + _RELATIVE_TOLERANCE * (abs(centered_xy) + 1e-300):
        raise ValidationError(
            f"{name} is inconsistent with the sums: |Σ(x−x̄)(y−ȳ)| = {abs(centered_xy)!r} exceeds "
            f"√(Σ(x−x̄)²·Σ(y−ȳ)²) = {bound!r}"
        )


@dataclass(frozen=True, slots=True)
class ValueSums:
    """``Σ value`` and ``Σ value²`` over the units of a variation (the count lives in the parent)."""

    sum: float
    """Sum of the per-unit values."""
    sum_squares: float
    """Sum of the squared per-unit values."""

    def __post_init__(self) -> None:
        _check_finite("sum", self.sum)
        _check_finite("sum_squares", self.sum_squares)
        if self.sum_squares < 0:
            raise ValidationError(f"sum_squares must be >= 0, got {self.sum_squares!r}")

    def __add__(self, other: ValueSums) -> ValueSums:
        return ValueSums(self.sum + other.sum, self.sum_squares + other.sum_squares)


@dataclass(frozen=True, slots=True)
class SampleMeanStatistic:
    """A mean metric (revenue per user, sessions per user): ``n`` units, ``Σy``, ``Σy²``."""

    n: int
    """Number of units (users) in the variation."""
    sum: float
    """Σ of the per-unit metric values."""
    sum_squares: float
    """Σ of the squared per-unit metric values."""

    def __post_init__(self) -> None:
        _check_count(self.n)
        ValueSums(self.sum, self.sum_squares)
        centered_sum_of_squares(self.n, self.sum, self.sum_squares)

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        if not isinstance(other, SampleMeanStatistic):
            return NotImplemented
        return SampleMeanStatistic(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    @property
    def mean(self) -> float:
        """ȳ (NaN when n is 0)."""
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance ``(Σy² − (Σy)²/n) / (n − 1)`` (NaN when n < 2)."""
        if self.n < 2:
            return math.nan
        return centered_sum_of_squares(self.n, self.sum, self.sum_squares) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class ProportionStatistic:
    """A binomial metric (converted or not): ``n`` units, ``sum`` = conversions (= Σy² for 0/1 values)."""

    n: int
    """Number of units in the variation."""
    sum: float
    """Number of converted units (0 <= sum <= n)."""

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite("sum", self.sum)
        if not 0 <= self.sum <= self.n:
            raise ValidationError(f"conversions must be between 0 and n ({self.n}), got {self.sum!r}")

    def __add__(self, other: ProportionStatistic) -> ProportionStatistic:
        if not isinstance(other, ProportionStatistic):
            return NotImplemented
        return ProportionStatistic(self.n + other.n, self.sum + other.sum)

    @property
    def sum_squares(self) -> float:
        """Σy² equals Σy for 0/1 values."""
        return self.sum

    @property
    def mean(self) -> float:
        """Conversion rate p̂ (NaN when n is 0)."""
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of the 0/1 values: ``p̂(1 − p̂)·n/(n − 1)`` (NaN when n < 2)."""
        if self.n < 2:
            return math.nan
        return max(0.0, self.sum - self.sum * self.sum / self.n) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class RatioStatistic:
    """A ratio metric Σm / Σd (revenue per order, clicks per session), per unit by the delta method."""

    n: int
    """Number of randomisation units (users) in the variation."""
    numerator: ValueSums
    """Σm and Σm² over units."""
    denominator: ValueSums
    """Σd and Σd² over units."""
    cross_sum: float
    """Σ m·d over units."""

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite("cross_sum", self.cross_sum)
        centered_m = centered_sum_of_squares(
            self.n, self.numerator.sum, self.numerator.sum_squares, "numerator"
        )
        centered_d = centered_sum_of_squares(
            self.n, self.denominator.sum, self.denominator.sum_squares, "denominator"
        )
        if self.n:
            centered_md = _centered_cross(self.n, self.numerator.sum, self.denominator.sum, self.cross_sum)
            _check_cauchy_schwarz(centered_m, centered_d, centered_md, "cross_sum")

    def __add__(self, other: RatioStatistic) -> RatioStatistic:
        if not isinstance(other, RatioStatistic):
            return NotImplemented
        return RatioStatistic(
            self.n + other.n,
            self.numerator + other.numerator,
            self.denominator + other.denominator,
            self.cross_sum + other.cross_sum,
        )

    @property
    def mean(self) -> float:
        """Σm / Σd (NaN when Σd is 0)."""
        return self.numerator.sum / self.denominator.sum if self.denominator.sum else math.nan

    @property
    def covariance(self) -> float:
        """Sample covariance of (m, d) over units (NaN when n < 2)."""
        if self.n < 2:
            return math.nan
        return _centered_cross(self.n, self.numerator.sum, self.denominator.sum, self.cross_sum) / (
            self.n - 1
        )


@dataclass(frozen=True, slots=True)
class CupedStatistic:
    """A mean (or binomial) metric y with a pre-exposure covariate x, for CUPED (Deng et al. 2013)."""

    n: int
    """Number of units in the variation."""
    metric: ValueSums
    """Σy and Σy² of the metric after exposure."""
    covariate: ValueSums
    """Σx and Σx² of the covariate (usually the same metric before exposure)."""
    cross_sum: float
    """Σ y·x over units."""

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite("cross_sum", self.cross_sum)
        centered_y = centered_sum_of_squares(self.n, self.metric.sum, self.metric.sum_squares, "metric")
        centered_x = centered_sum_of_squares(
            self.n, self.covariate.sum, self.covariate.sum_squares, "covariate"
        )
        if self.n:
            centered_yx = _centered_cross(self.n, self.metric.sum, self.covariate.sum, self.cross_sum)
            _check_cauchy_schwarz(centered_y, centered_x, centered_yx, "cross_sum")

    def __add__(self, other: CupedStatistic) -> CupedStatistic:
        if not isinstance(other, CupedStatistic):
            return NotImplemented
        return CupedStatistic(
            self.n + other.n,
            self.metric + other.metric,
            self.covariate + other.covariate,
            self.cross_sum + other.cross_sum,
        )

    @property
    def mean(self) -> float:
        """Unadjusted ȳ (NaN when n is 0)."""
        return self.metric.sum / self.n if self.n else math.nan


Statistic = SampleMeanStatistic | ProportionStatistic | RatioStatistic | CupedStatistic | AdjustedStatistic
"""Any per-variation sufficient statistic the engine compares (AdjustedStatistic: several covariates and
strata, :mod:`jobs.stats.regression_adjustment`)."""


def pooled_theta(statistics: list[CupedStatistic] | tuple[CupedStatistic, ...]) -> float:
    """CUPED's θ = Cov(y, x) / Var(x), pooled over every variation (Deng et al. 2013, §3.2).

    Pooling keeps θ identical for all arms, so the adjustment ``θ(x̄_b − x̄_a)`` has mean 0 under
    randomisation and the estimate stays unbiased. A constant covariate carries no information: θ is 0
    and CUPED reduces to the plain test (documented in docs/statistics.md, not an error).
    """
    if not statistics:
        raise ValidationError("pooled_theta needs at least one statistic")
    total = statistics[0]
    for statistic in statistics[1:]:
        total = total + statistic
    if total.n < 2:
        return 0.0
    centered_x = centered_sum_of_squares(
        total.n, total.covariate.sum, total.covariate.sum_squares, "covariate"
    )
    if centered_x == 0:
        return 0.0
    return _centered_cross(total.n, total.metric.sum, total.covariate.sum, total.cross_sum) / centered_x
