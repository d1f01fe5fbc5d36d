"""One metric of one experiment: every treatment against control, by the chosen method."""

from __future__ import annotations

from collections.abc import Sequence

from jobs.stats.bayesian import GaussianPrior, bayesian_from_moments
from jobs.stats.effects import effect_moments
from jobs.stats.frequentist import welch_from_moments
from jobs.stats.results import Difference, EffectResult, Method
from jobs.stats.sequential import DEFAULT_TUNING_PARAMETER, sequential_from_moments
from jobs.stats.sufficient import CupedStatistic, Statistic, pooled_theta
from jobs.stats.validation import check_alpha
from xpcore.errors import ValidationError

__all__ = ["compare_variations"]


def compare_variations(
    statistics: Sequence[Statistic],
    *,
    method: Method = "sequential",
    difference: Difference = "relative",
    alpha: float = 0.05,
    higher_is_better: bool = True,
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
    prior: GaussianPrior | None = None,
) -> list[EffectResult]:
    """Results for ``statistics[1:]`` against ``statistics[0]`` (control), in order.

    CUPED statistics share one θ pooled over *all* variations (Deng et al. 2013).
    """
    check_alpha(alpha)
    if len(statistics) < 2:
        raise ValidationError("a comparison needs a control and at least one treatment")
    kinds = {type(statistic) for statistic in statistics}
    if len(kinds) > 1:
        raise ValidationError(
            f"all variations must use one kind of statistic, got {sorted(k.__name__ for k in kinds)}"
        )
    theta = None
    if isinstance(statistics[0], CupedStatistic):
        theta = pooled_theta([s for s in statistics if isinstance(s, CupedStatistic)])
    control = statistics[0]
    results = []
    for treatment in statistics[1:]:
        moments = effect_moments(control, treatment, difference, theta)
        if method == "frequentist":
            result = welch_from_moments(moments, difference=difference, alpha=alpha)
        elif method == "sequential":
            result = sequential_from_moments(
                moments, difference=difference, alpha=alpha, tuning_parameter=tuning_parameter
            )
        elif method == "bayesian":
            result = bayesian_from_moments(
                moments, difference=difference, alpha=alpha, prior=prior, higher_is_better=higher_is_better
            )
        else:
            raise ValidationError(f"method must be frequentist, bayesian or sequential, got {method!r}")
        results.append(result)
    return results
