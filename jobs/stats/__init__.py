"""The statistics engine: sufficient statistics in (as ClickHouse returns them), results out.

Pure functions over small frozen dataclasses; no I/O. Formulas, references and the simulation figures
are in docs/statistics.md. Public surface:

- sufficient statistics that add up: :class:`SampleMeanStatistic`, :class:`ProportionStatistic`,
  :class:`RatioStatistic`, :class:`CupedStatistic` (+ :class:`ValueSums`, :func:`pooled_theta`)
- one function per test: :func:`welch_t_test`, :func:`sequential_test`, :func:`gaussian_bayesian_test`,
  and :func:`compare_variations` for control vs every treatment
- :func:`sample_ratio_mismatch`, :func:`holm_bonferroni`, :func:`benjamini_hochberg`,
  :func:`power`, :func:`minimum_detectable_effect`, :func:`sample_size_per_variation`,
  :func:`top_segments`, :func:`is_guardrail_harmed`
- results: :class:`EffectResult` with ``error`` a :class:`StatsErrorCode` instead of an exception

Errors: invalid input raises :class:`xpcore.errors.ValidationError`; degenerate but valid data
(an empty variation, zero variance, a zero control mean for a relative lift) gives a coded result.
"""

from __future__ import annotations

from jobs.stats.analysis import compare_variations
from jobs.stats.bayesian import GaussianPrior, gaussian_bayesian_test
from jobs.stats.corrections import benjamini_hochberg, holm_bonferroni
from jobs.stats.effects import EffectMoments, effect_moments
from jobs.stats.frequentist import welch_t_test
from jobs.stats.guardrails import is_guardrail_harmed
from jobs.stats.power import minimum_detectable_effect, power, sample_size_per_variation
from jobs.stats.results import EffectResult, StatsErrorCode
from jobs.stats.segments import top_segments
from jobs.stats.sequential import sequential_test
from jobs.stats.srm import SrmResult, sample_ratio_mismatch
from jobs.stats.sufficient import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
    ValueSums,
    pooled_theta,
)

__all__ = [
    "CupedStatistic",
    "EffectMoments",
    "EffectResult",
    "GaussianPrior",
    "ProportionStatistic",
    "RatioStatistic",
    "SampleMeanStatistic",
    "SrmResult",
    "Statistic",
    "StatsErrorCode",
    "ValueSums",
    "benjamini_hochberg",
    "compare_variations",
    "effect_moments",
    "gaussian_bayesian_test",
    "holm_bonferroni",
    "is_guardrail_harmed",
    "minimum_detectable_effect",
    "pooled_theta",
    "power",
    "sample_ratio_mismatch",
    "sample_size_per_variation",
    "sequential_test",
    "top_segments",
    "welch_t_test",
]
