"""Regression adjustment with several covariates and strata (CUPED++), from sufficient statistics.

A metric y is adjusted with k regressors x = (x_1 … x_k): pre-period values (the metric's own and other
metrics') and 0/1 indicators of categorical strata (``country=DE``, ``device=ios``). Per variation the
engine needs only sums that add up across parts: ``n``, ``Σy``, ``Σy²``, ``Σx`` (k), ``Σxxᵀ`` (k × k) and
``Σxy`` (k), as ClickHouse's ``sumForEach`` returns them.

The coefficient β is the ordinary least-squares slope of y on x *within* variations, pooled over every
variation (the ANCOVA / regression estimator of Lin 2013 without interactions; with one covariate it is
CUPED's θ of Deng et al. 2013 with the within-arm covariance, decision 0085):

    S_xx = Σ_arms (Σxxᵀ − n·x̄x̄ᵀ),  S_xy = Σ_arms (Σxy − n·x̄ȳ),  β = S_xx⁺ S_xy   (pseudo-inverse)

The pseudo-inverse makes a full set of a stratum's indicators (collinear with the intercept) harmless:
the fitted values are unique. The arm's adjusted value is ``ȳ − βᵀx̄`` (the common shift βᵀx̄_pooled
cancels in a difference) and its per-unit variance the residual variance ``(1, −β)ᵀ Σ (1, −β)``, so
``Var(Δ) = s²_e,a/n_a + s²_e,b/n_b``. With strata indicators only this is post-stratification's regression
form (Miratrix, Sekhon & Yu 2013). The variance reduction against the unadjusted difference tends to
the population ``R²`` of y on x (``1 − R²`` of the variance is left).

Pure; numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xpcore.errors import ValidationError

__all__ = ["AdjustedStatistic", "pooled_coefficients", "unit_covariance", "variance_reduction"]

Vector = tuple[float, ...]
Matrix = tuple[tuple[float, ...], ...]

_SYMMETRY_TOLERANCE = 1e-9


def _finite(name: str, values: Sequence[float]) -> None:
    for value in values:
        if not math.isfinite(value):
            raise ValidationError(f"{name} must hold finite numbers, got {value!r}")


@dataclass(frozen=True, slots=True)
class AdjustedStatistic:
    """A mean (or binomial) metric y with k regressors x: the sums one variation contributes."""

    n: int
    """Number of units in the variation."""
    sum: float
    """Σy of the metric after exposure."""
    sum_squares: float
    """Σy²."""
    covariate_sums: Vector
    """Σx_i per regressor (pre-period values, stratum indicators)."""
    covariate_crosses: Matrix
    """Σx_i·x_j (k × k, symmetric; the diagonal is Σx_i²)."""
    metric_crosses: Vector
    """Σy·x_i per regressor."""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise ValidationError(f"n must be an integer >= 0, got {self.n!r}")
        k = len(self.covariate_sums)
        if k == 0:
            raise ValidationError("an adjusted statistic needs at least one covariate")
        if len(self.metric_crosses) != k or len(self.covariate_crosses) != k:
            raise ValidationError(
                f"{k} covariate sums but {len(self.metric_crosses)} metric crosses and "
                f"{len(self.covariate_crosses)} rows of covariate crosses"
            )
        if any(len(row) != k for row in self.covariate_crosses):
            raise ValidationError(f"covariate crosses must be a {k} × {k} matrix")
        _finite("sum, sum_squares", (self.sum, self.sum_squares))
        _finite("covariate sums", self.covariate_sums)
        _finite("metric crosses", self.metric_crosses)
        for row in self.covariate_crosses:
            _finite("covariate crosses", row)
        if self.n == 0 and any(self.covariate_sums + self.metric_crosses + (self.sum, self.sum_squares)):
            raise ValidationError("n is 0 but the sums are not")
        for i in range(k):
            for j in range(i):
                a, b = self.covariate_crosses[i][j], self.covariate_crosses[j][i]
                if abs(a - b) > _SYMMETRY_TOLERANCE * max(abs(a), abs(b), 1.0):
                    raise ValidationError(
                        f"covariate crosses must be symmetric: [{i}][{j}]={a!r}, [{j}][{i}]={b!r}"
                    )
        if self.n:
            eigenvalues = np.linalg.eigvalsh(_centered(self))
            scale = max(float(np.max(np.abs(eigenvalues))), 1e-300)
            if float(eigenvalues[0]) < -1e-7 * scale:
                raise ValidationError(
                    "the sums are inconsistent: their centered cross-product matrix is not positive "
                    "semi-definite (no set of real values has them)"
                )

    def __add__(self, other: AdjustedStatistic) -> AdjustedStatistic:
        if not isinstance(other, AdjustedStatistic):
            return NotImplemented
        if len(other.covariate_sums) != len(self.covariate_sums):
            raise ValidationError("cannot add adjusted statistics with different numbers of covariates")
        return AdjustedStatistic(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            tuple(a + b for a, b in zip(self.covariate_sums, other.covariate_sums, strict=True)),
            tuple(
                tuple(a + b for a, b in zip(row, other_row, strict=True))
                for row, other_row in zip(self.covariate_crosses, other.covariate_crosses, strict=True)
            ),
            tuple(a + b for a, b in zip(self.metric_crosses, other.metric_crosses, strict=True)),
        )

    @property
    def mean(self) -> float:
        """Unadjusted ȳ (NaN when n is 0)."""
        return self.sum / self.n if self.n else math.nan

    @property
    def covariate_count(self) -> int:
        """k, the number of regressors."""
        return len(self.covariate_sums)


def _centered(statistic: AdjustedStatistic) -> np.ndarray:
    """The (k + 1) × (k + 1) centered cross products of (y, x_1 … x_k): Σ(v − v̄)(v − v̄)ᵀ."""
    n = statistic.n
    sums = np.array((statistic.sum, *statistic.covariate_sums))
    raw = np.empty((len(sums), len(sums)))
    raw[0, 0] = statistic.sum_squares
    raw[0, 1:] = raw[1:, 0] = statistic.metric_crosses
    raw[1:, 1:] = np.array(statistic.covariate_crosses)
    if n == 0:
        return np.zeros_like(raw)
    return (raw + raw.T) / 2 - np.outer(sums, sums) / n


def unit_covariance(statistic: AdjustedStatistic) -> Matrix:
    """Sample covariance (divisor n − 1) of (y, x_1 … x_k) over the variation's units (n ≥ 2)."""
    if statistic.n < 2:
        raise ValidationError(f"a covariance needs at least 2 units, got {statistic.n}")
    matrix = _centered(statistic) / (statistic.n - 1)
    return tuple(tuple(float(v) for v in row) for row in matrix)


def pooled_coefficients(statistics: Sequence[AdjustedStatistic]) -> Vector:
    """β: the within-variation least-squares slopes of y on x, pooled over ``statistics`` (all arms).

    Constant or collinear regressors get the minimum-norm solution (their share of the fit is zero or
    shared); with no unit at all β is 0.
    """
    if not statistics:
        raise ValidationError("pooled_coefficients needs at least one statistic")
    k = statistics[0].covariate_count
    if any(s.covariate_count != k for s in statistics):
        raise ValidationError("every variation must have the same covariates")
    centered = sum((_centered(s) for s in statistics), start=np.zeros((k + 1, k + 1)))
    s_xx, s_xy = centered[1:, 1:], centered[1:, 0]
    if not np.any(s_xx):
        return (0.0,) * k
    beta, *_ = np.linalg.lstsq(s_xx, s_xy, rcond=1e-10)
    return tuple(float(b) for b in beta)


def variance_reduction(statistics: Sequence[AdjustedStatistic], beta: Vector | None = None) -> float | None:
    """``1 − Var(adjusted Δ) / Var(unadjusted Δ)`` for control (first) vs the pooled treatments.

    Computed as ``1 − Σ s²_e/n / Σ s²_y/n`` over every variation (the share of the difference's variance
    the regressors remove; ≈ R² of y on x). None when a variation has fewer than 2 units or y is
    constant.
    """
    if beta is None:
        beta = pooled_coefficients(statistics)
    weights = np.array((1.0, *(-b for b in beta)))
    plain = adjusted = 0.0
    for statistic in statistics:
        if statistic.n < 2:
            return None
        covariance = _centered(statistic) / (statistic.n - 1)
        plain += float(covariance[0, 0]) / statistic.n
        adjusted += max(0.0, float(weights @ covariance @ weights)) / statistic.n
    if plain <= 0:
        return None
    return 1.0 - adjusted / plain
