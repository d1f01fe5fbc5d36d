"""Gaussian Bayesian test on the difference, GrowthBook-style (gbstats ``EffectBayesianABTest``).

The likelihood of the observed difference is ``Δ̂ ~ N(Δ, se²)``. With the default flat (improper)
prior the posterior is ``N(Δ̂, se²)``; with a proper prior ``N(μ₀, σ₀²)`` on Δ it is the
precision-weighted normal. From the posterior ``N(m, s²)``:

    chance to win = P(Δ > 0) = Φ(m / s)             (P(Δ < 0) when lower is better)
    credible int. = m ± z_{1−α/2} · s
    risk          = E[max(−Δ, 0)] = s·φ(m/s) − m·Φ(−m/s)   (expected loss of shipping; signs flipped
                                                          when lower is better)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from jobs.stats.effects import EffectMoments, effect_moments
from jobs.stats.results import Difference, EffectResult
from jobs.stats.sufficient import Statistic
from jobs.stats.validation import check_alpha, check_positive

__all__ = ["GaussianPrior", "bayesian_from_moments", "expected_loss", "gaussian_bayesian_test"]

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A proper normal prior on the difference, in the units of the difference (relative or absolute)."""

    mean: float = 0.0
    """Prior mean of Δ."""
    variance: float = 1.0
    """Prior variance of Δ (> 0)."""

    def __post_init__(self) -> None:
        check_positive("prior variance", self.variance)
        if not math.isfinite(self.mean):
            from xpcore.errors import ValidationError

            raise ValidationError(f"prior mean must be finite, got {self.mean!r}")


def expected_loss(mean: float, sd: float) -> float:
    """E[max(−Δ, 0)] for Δ ~ N(mean, sd²): what shipping loses on average if Δ is in fact negative."""
    z = mean / sd
    return sd * _STANDARD_NORMAL.pdf(z) - mean * _STANDARD_NORMAL.cdf(-z)


def bayesian_from_moments(
    moments: EffectMoments,
    *,
    difference: Difference,
    alpha: float,
    prior: GaussianPrior | None = None,
    higher_is_better: bool = True,
) -> EffectResult:
    """Posterior summaries for an estimate and its variance; ``prior=None`` is the flat prior."""
    check_alpha(alpha)
    if moments.error is not None:
        return EffectResult.failed("bayesian", difference, moments.error)
    if prior is None:
        mean, variance = moments.estimate, moments.variance
    else:
        precision = 1 / moments.variance + 1 / prior.variance
        variance = 1 / precision
        mean = variance * (moments.estimate / moments.variance + prior.mean / prior.variance)
    sd = math.sqrt(variance)
    z = _STANDARD_NORMAL.inv_cdf(1 - alpha / 2)
    probability_positive = _STANDARD_NORMAL.cdf(mean / sd)
    if higher_is_better:
        chance_to_win, risk = probability_positive, expected_loss(mean, sd)
    else:
        chance_to_win, risk = 1 - probability_positive, expected_loss(-mean, sd)
    return EffectResult(
        method="bayesian",
        difference=difference,
        estimate=mean,
        standard_error=sd,
        ci_low=mean - z * sd,
        ci_high=mean + z * sd,
        chance_to_win=chance_to_win,
        risk=risk,
    )


def gaussian_bayesian_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = 0.05,
    prior: GaussianPrior | None = None,
    higher_is_better: bool = True,
    theta: float | None = None,
) -> EffectResult:
    """Gaussian Bayesian comparison of ``treatment`` with ``control`` (flat prior unless one is given)."""
    moments = effect_moments(control, treatment, difference, theta)
    return bayesian_from_moments(
        moments, difference=difference, alpha=alpha, prior=prior, higher_is_better=higher_is_better
    )
