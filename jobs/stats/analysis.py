"""One metric of one experiment: every treatment against control, by the chosen method."""

from __future__ import annotations

from collections.abc import Sequence

from assignment.analysis_block import GROUP_SEQUENTIAL_METHODS, METHODS
from jobs.stats.bayesian import GaussianPrior, bayesian_from_moments
from jobs.stats.effects import effect_moments
from jobs.stats.frequentist import welch_from_moments
from jobs.stats.group_sequential import DEFAULT_PLANNED_LOOKS, group_sequential_from_moments
from jobs.stats.quantiles import QuantileStatistic, quantile_moments
from jobs.stats.results import Difference, EffectResult, Method, RelativeInterval, StatsErrorCode
from jobs.stats.sequential import sequential_from_moments, tuning_for
from jobs.stats.sufficient import CupedStatistic, Statistic, pooled_theta
from jobs.stats.validation import check_alpha
from xpcore.errors import ValidationError

__all__ = ["compare_variations"]


def compare_variations(
    statistics: Sequence[Statistic] | Sequence[QuantileStatistic],
    *,
    method: Method = "sequential",
    difference: Difference = "relative",
    alpha: float = 0.05,
    higher_is_better: bool = True,
    tuning_parameter: float | None = None,
    prior: GaussianPrior | None = None,
    planned_units: int | None = None,
    planned_looks: int | None = None,
    relative_interval: RelativeInterval = "fieller",
    information_fraction: float | None = None,
) -> list[EffectResult]:
    """Results for ``statistics[1:]`` against ``statistics[0]`` (control), in order.

    CUPED statistics share one θ pooled over *all* variations (Deng et al. 2013).

    ``planned_units`` (all variations) tunes the sequential N* when ``tuning_parameter`` is not given
    (decision 0063), and is required by the group-sequential methods: their information fraction is the
    units of *all* variations over it, so every treatment of every metric is at the same look.
    ``planned_looks`` None means 5. ``information_fraction`` overrides the fraction for a subset of the
    experiment (a segment breakdown is at the whole experiment's look, not at its own units' fraction).

    :class:`~jobs.stats.quantiles.QuantileStatistic` variations (quantile metrics) go through
    :func:`~jobs.stats.quantiles.quantile_moments`; every method then applies as for a mean.
    """
    check_alpha(alpha)
    if len(statistics) < 2:
        raise ValidationError("a comparison needs a control and at least one treatment")
    group_sequential = method in GROUP_SEQUENTIAL_METHODS
    if group_sequential and planned_units is None:
        raise ValidationError(f"method {method} needs planned_units (units the experiment is planned for)")
    if relative_interval not in ("fieller", "delta"):
        raise ValidationError(f"relative_interval must be 'fieller' or 'delta', got {relative_interval!r}")
    kinds = {type(statistic) for statistic in statistics}
    if len(kinds) > 1:
        raise ValidationError(
            f"all variations must use one kind of statistic, got {sorted(k.__name__ for k in kinds)}"
        )
    theta = None
    if isinstance(statistics[0], CupedStatistic):
        theta = pooled_theta([s for s in statistics if isinstance(s, CupedStatistic)])
    control = statistics[0]
    tuning = tuning_for(tuning_parameter, planned_units)
    looks = DEFAULT_PLANNED_LOOKS if planned_looks is None else planned_looks
    if information_fraction is not None:
        fraction = information_fraction
    else:
        units = sum(s.units if isinstance(s, QuantileStatistic) else s.n for s in statistics)
        fraction = units / planned_units if planned_units else 0.0
    results = []
    for treatment in statistics[1:]:
        if isinstance(control, QuantileStatistic) and isinstance(treatment, QuantileStatistic):
            moments = quantile_moments(control, treatment, difference)
        else:
            moments = effect_moments(control, treatment, difference, theta)  # type: ignore[arg-type]
        if method == "frequentist":
            result = welch_from_moments(
                moments, difference=difference, alpha=alpha, relative_interval=relative_interval
            )
        elif method == "sequential":
            result = sequential_from_moments(
                moments,
                difference=difference,
                alpha=alpha,
                tuning_parameter=tuning,
                relative_interval=relative_interval,
            )
        elif group_sequential:
            if fraction <= 0:  # no units at all yet: nothing is at a look
                result = EffectResult.failed(method, difference, StatsErrorCode.empty_variation)
            else:
                result = group_sequential_from_moments(
                    moments,
                    method=method,
                    difference=difference,
                    alpha=alpha,
                    information_fraction=fraction,
                    planned_looks=looks,
                    relative_interval=relative_interval,
                )
        elif method == "bayesian":
            result = bayesian_from_moments(
                moments, difference=difference, alpha=alpha, prior=prior, higher_is_better=higher_is_better
            )
        else:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        results.append(result)
    return results
