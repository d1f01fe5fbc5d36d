"""Group-sequential tests over planned looks with Lan–DeMets alpha spending (O'Brien–Fleming, Pocock).

An experiment planned for ``planned_units`` units and ``planned_looks`` equally spaced looks is analysed
at information fraction ``t = units so far / planned_units``. The spending function says how much of α
may be used up by time t (Lan & DeMets 1983). The boundaries are symmetric, each side spending half of
α by the one-sided function at α/2, as R's ldbounds and gsDesign (``sfLDOF`` at α/2) do:

    O'Brien–Fleming type   α(t) = 2 · (2 − 2Φ(z_{1−α/4} / √t))   spends almost nothing early
    Pocock type            α(t) = α · ln(1 + (e − 1)·t)           spends evenly

and the boundary b_k of look k is the one for which ``P(|Z_k| ≥ b_k, no earlier crossing) = α(t_k) −
α(t_{k−1})`` under H0, where (Z_1, …, Z_k) is the canonical joint normal with ``Cov(Z_i, Z_j) = √(t_i/t_j)``.
That probability is computed by recursive numerical integration of the score ``S = Z·√t`` (a Brownian
motion in t) over the continuation regions (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000,
ch. 19), Simpson's rule on a grid finer than the next increment's standard deviation.

At look k the result is a repeated confidence interval ``Δ ± b_k·se`` (Jennison & Turnbull 1989; for a
relative lift Fieller's set at ``c = b_k``) and the repeated p-value: the smallest α' whose boundary
``|Z_k|`` crosses at this look (interpolated on a grid of α', exact at α itself, so ``p < α`` exactly
when the interval excludes 0). The looks before the current fraction are taken to be the planned ones
(``k/K < t``); at or past the planned units the last look spends what is left of α.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Final, Literal

import numpy as np

from jobs.stats.effects import EffectMoments
from jobs.stats.fieller import fieller_interval
from jobs.stats.results import Difference, EffectResult, Method, RelativeInterval, StatsErrorCode
from jobs.stats.validation import check_alpha
from xpcore.errors import ValidationError

__all__ = [
    "DEFAULT_PLANNED_LOOKS",
    "Spending",
    "crossing_probability",
    "group_sequential_boundaries",
    "group_sequential_from_moments",
    "look_times",
    "repeated_p_value",
    "spent_alpha",
]

Spending = Literal["obrien_fleming", "pocock"]
DEFAULT_PLANNED_LOOKS: Final = 5
"""Equally spaced looks when an experiment does not say (decision 0063)."""

_SPENDING_OF_METHOD: Final[dict[str, Spending]] = {
    "group_sequential_obf": "obrien_fleming",
    "group_sequential_pocock": "pocock",
}
_TAIL_SDS: Final = 9.0
"""The grid stops this many standard deviations out: the normal mass beyond is < 3·10⁻¹⁹."""
_POINTS_PER_SD: Final = 6.0
"""Grid points per standard deviation of the next increment: boundaries within ~10⁻⁵ of a 16-point grid."""
_MAX_POINTS: Final = 2001


def _ndtr(x: np.ndarray | float) -> np.ndarray:
    from scipy import special

    return np.asarray(special.ndtr(x))


def spent_alpha(t: float, alpha: float, spending: Spending) -> float:
    """α(t): the two-sided type I error that may be spent by information fraction t (α(1) = α)."""
    from scipy import special

    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    if spending == "obrien_fleming":
        return float(4 * special.ndtr(-float(special.ndtri(1 - alpha / 4)) / math.sqrt(t)))
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1) * t)
    raise ValidationError(f"spending must be 'obrien_fleming' or 'pocock', got {spending!r}")


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.ones(points)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return weights * step / 3.0


def _grid(half_width: float, next_sd: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Simpson nodes and weights on [−half_width, half_width], spaced ≤ min(next_sd, scale)/6."""
    step = min(next_sd, scale) / _POINTS_PER_SD
    points = math.ceil(2 * half_width / step) + 1
    points = min(max(points | 1, 3), _MAX_POINTS)  # odd, for Simpson
    nodes = np.linspace(-half_width, half_width, points)
    return nodes, _simpson_weights(points, nodes[1] - nodes[0])


def _check_times(times: tuple[float, ...]) -> None:
    if not times or any(not (0 < t <= 1) for t in times) or any(b <= a for a, b in itertools.pairwise(times)):
        raise ValidationError(f"look times must increase within (0, 1], got {times!r}")


def _crossing_excess(c: float, *, mass: np.ndarray, nodes: np.ndarray, sd: float, target: float) -> float:
    """P(|S| crosses c at this look, not before) − the α this look may spend."""
    return float(mass @ (_ndtr((-c - nodes) / sd) + _ndtr((nodes - c) / sd))) - target


@functools.lru_cache(maxsize=4096)
def group_sequential_boundaries(
    times: tuple[float, ...], alpha: float, spending: Spending
) -> tuple[float, ...]:
    """Two-sided z-boundaries b_1…b_K at information fractions ``times`` (∞: nothing left to spend)."""
    from scipy import optimize, special

    check_alpha(alpha)
    _check_times(times)
    boundaries: list[float] = []
    nodes = weights = density = None
    previous_t = 0.0
    for index, t in enumerate(times):
        increment = spent_alpha(t, alpha, spending) - spent_alpha(previous_t, alpha, spending)
        next_sd = math.sqrt(times[index + 1] - t) if index + 1 < len(times) else math.sqrt(t)
        if nodes is None:
            bound = -float(special.ndtri(increment / 2)) if increment > 0 else math.inf
            half_width = min(bound, _TAIL_SDS) * math.sqrt(t)
            nodes, weights = _grid(half_width, next_sd, math.sqrt(t))
            density = np.exp(-0.5 * nodes * nodes / t) / math.sqrt(2 * math.pi * t)
        else:
            assert weights is not None and density is not None
            sd = math.sqrt(t - previous_t)
            mass = weights * density
            root_t = math.sqrt(t)

            excess = functools.partial(_crossing_excess, mass=mass, nodes=nodes, sd=sd, target=increment)
            if increment <= 0 or excess(40 * root_t) >= 0:
                bound = math.inf
            else:
                bound = optimize.brentq(excess, 0.0, 40 * root_t, xtol=1e-12, rtol=1e-12) / root_t
            half_width = min(bound, _TAIL_SDS) * root_t
            new_nodes, new_weights = _grid(half_width, next_sd, root_t)
            kernel = np.exp(-0.5 * ((new_nodes[:, None] - nodes[None, :]) / sd) ** 2)
            density = kernel @ mass / (sd * math.sqrt(2 * math.pi))
            nodes, weights = new_nodes, new_weights
        boundaries.append(bound)
        previous_t = t
    return tuple(boundaries)


def crossing_probability(
    times: tuple[float, ...], boundaries: tuple[float, ...], drift: float = 0.0
) -> float:
    """P(|Z_k| ≥ b_k at some look) when ``E[Z_k] = drift·√t_k`` (drift = the expected z at t = 1).

    Under H0 (drift 0) this is the design's type I error; with the drift of an effect it is the power
    at the planned horizon (Jennison & Turnbull 2000, ch. 19: the same recursion as the boundaries).
    """
    _check_times(times)
    if len(boundaries) != len(times):
        raise ValidationError(f"{len(boundaries)} boundaries for {len(times)} looks")
    crossed = 0.0
    nodes = density = weights = None
    previous_t = 0.0
    for index, (t, bound) in enumerate(zip(times, boundaries, strict=True)):
        root_t = math.sqrt(t)
        next_sd = math.sqrt(times[index + 1] - t) if index + 1 < len(times) else root_t
        c = min(bound, 40.0) * root_t
        if nodes is None:
            crossed += float(_ndtr((-c - drift * t) / root_t) + _ndtr((drift * t - c) / root_t))
            half_width = min(bound, _TAIL_SDS + abs(drift) * root_t) * root_t
            nodes, weights = _grid(half_width, next_sd, root_t)
            density = np.exp(-0.5 * (nodes - drift * t) ** 2 / t) / math.sqrt(2 * math.pi * t)
        else:
            assert weights is not None and density is not None
            sd, shift = math.sqrt(t - previous_t), drift * (t - previous_t)
            mass = weights * density
            crossed += float(mass @ (_ndtr((-c - nodes - shift) / sd) + _ndtr((nodes + shift - c) / sd)))
            half_width = min(bound * root_t, (_TAIL_SDS + abs(drift)) * root_t)
            new_nodes, new_weights = _grid(half_width, next_sd, root_t)
            kernel = np.exp(-0.5 * ((new_nodes[:, None] - nodes[None, :] - shift) / sd) ** 2)
            density = kernel @ mass / (sd * math.sqrt(2 * math.pi))
            nodes, weights = new_nodes, new_weights
        previous_t = t
    return crossed


def look_times(information_fraction: float, planned_looks: int) -> tuple[float, ...]:
    """The planned looks ``k/K`` before ``information_fraction``, then the current look (capped at 1)."""
    if not (isinstance(planned_looks, int) and planned_looks >= 1):
        raise ValidationError(f"planned_looks must be a whole number >= 1, got {planned_looks!r}")
    if not (math.isfinite(information_fraction) and information_fraction > 0):
        raise ValidationError(f"information fraction must be positive, got {information_fraction!r}")
    current = min(information_fraction, 1.0)
    earlier = tuple(k / planned_looks for k in range(1, planned_looks) if k / planned_looks < current - 1e-9)
    return (*earlier, current)


_P_GRID: Final = tuple(float(x) for x in np.geomspace(1e-8, 0.95, 20))


@functools.lru_cache(maxsize=1024)
def _last_boundary_by_alpha(
    times: tuple[float, ...], alpha: float, spending: Spending
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    levels = tuple(sorted({*_P_GRID, alpha}))
    return levels, tuple(group_sequential_boundaries(times, level, spending)[-1] for level in levels)


def repeated_p_value(z: float, times: tuple[float, ...], alpha: float, spending: Spending) -> float:
    """The smallest α' at which ``|z|`` crosses the last look's boundary.

    Looked up on 20 levels α' from 10⁻⁸ to 0.95 plus ``alpha`` itself (so ``p < α`` exactly when
    ``|z|`` crosses the boundary at α): the boundary is close to linear in the nominal ``Φ⁻¹(1 − α'/2)``,
    which is interpolated monotonically (PCHIP) against it; above 0.95 linear to 1 at z = 0; below
    10⁻⁸ reported as 10⁻⁸."""
    from scipy import special
    from scipy.interpolate import PchipInterpolator

    levels, bounds = _last_boundary_by_alpha(times, alpha, spending)
    size = abs(z)
    finite = [(b, level) for b, level in zip(bounds, levels, strict=True) if math.isfinite(b)]
    if not finite:
        return 1.0
    bs = np.array([b for b, _ in finite])[::-1]  # increasing boundaries ↔ decreasing levels
    nominal = -special.ndtri(np.array([level for _, level in finite])[::-1] / 2)
    if size >= bs[-1]:
        return float(finite[0][1])
    if size <= bs[0]:
        top_b, top_level = float(bs[0]), float(finite[-1][1])
        return float(min(1.0, top_level + (1 - top_level) * (top_b - size) / top_b)) if top_b > 0 else 1.0
    q = float(PchipInterpolator(bs, nominal)(size))
    return float(2 * special.ndtr(-q))


def spending_of(method: Method) -> Spending:
    """The spending function of a group-sequential method name."""
    try:
        return _SPENDING_OF_METHOD[method]
    except KeyError:
        raise ValidationError(f"{method!r} is not a group-sequential method") from None


def group_sequential_from_moments(
    moments: EffectMoments,
    *,
    method: Method,
    difference: Difference,
    alpha: float,
    information_fraction: float,
    planned_looks: int = DEFAULT_PLANNED_LOOKS,
    relative_interval: RelativeInterval = "fieller",
) -> EffectResult:
    """Repeated confidence interval and repeated p-value at the look for ``information_fraction``."""
    check_alpha(alpha)
    spending = spending_of(method)
    times = look_times(information_fraction, planned_looks)
    if moments.error is not None:
        return EffectResult.failed(method, difference, moments.error)
    bound = group_sequential_boundaries(times, alpha, spending)[-1]
    terms = moments.fieller
    if relative_interval == "fieller" and terms is not None:
        variance = terms.variance_difference
        if not variance > 0:
            return EffectResult.failed(method, difference, StatsErrorCode.zero_variance)
        z = terms.difference / math.sqrt(variance)
        low, high = fieller_interval(terms, bound) if math.isfinite(bound) else (None, None)
    else:
        z = moments.estimate / moments.standard_error
        half_width = bound * moments.standard_error
        low, high = (None, None)
        if math.isfinite(bound):
            low, high = moments.estimate - half_width, moments.estimate + half_width
    return EffectResult(
        method=method,
        difference=difference,
        estimate=moments.estimate,
        standard_error=moments.standard_error,
        ci_low=low,
        ci_high=high,
        p_value=repeated_p_value(z, times, alpha, spending),
    )
