"""Helpers shared by the statistics tests: sufficient statistics from raw numpy data."""

from __future__ import annotations

import numpy as np

from jobs.stats import CupedStatistic, RatioStatistic, SampleMeanStatistic, ValueSums


def mean_stat(values: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(int(values.size), float(values.sum()), float((values * values).sum()))


def ratio_stat(numerator: np.ndarray, denominator: np.ndarray) -> RatioStatistic:
    return RatioStatistic(
        int(numerator.size),
        ValueSums(float(numerator.sum()), float((numerator**2).sum())),
        ValueSums(float(denominator.sum()), float((denominator**2).sum())),
        float((numerator * denominator).sum()),
    )


def cuped_stat(metric: np.ndarray, covariate: np.ndarray) -> CupedStatistic:
    return CupedStatistic(
        int(metric.size),
        ValueSums(float(metric.sum()), float((metric**2).sum())),
        ValueSums(float(covariate.sum()), float((covariate**2).sum())),
        float((metric * covariate).sum()),
    )


def binomial_tolerance(p: float, trials: int, sds: float = 3.0) -> float:
    """``sds`` standard deviations of a binomial proportion estimated from ``trials`` runs."""
    return sds * float(np.sqrt(p * (1 - p) / trials))
