"""Meta-analysis of one effect across experiments: fixed effect, heterogeneity (Q, I²), random effects.

Each experiment contributes an estimate ``y_i`` with its standard error ``s_i`` (weight ``w_i = 1/s_i²``):

    fixed effect     μ̂ = Σ w_i y_i / Σ w_i,  se(μ̂) = 1/√Σw_i,  z = μ̂/se,  p = 2Φ(−|z|),  CI = μ̂ ± z_{1−α/2}·se
    Cochran's Q      Q = Σ w_i (y_i − μ̂)²,  df = k − 1,  p_Q = P(χ²_df ≥ Q)
    I²               I² = max(0, (Q − df)/Q): the share of the total variation across experiments that is due
                     to real differences between them rather than chance (Higgins & Thompson 2002)
    DerSimonian–Laird τ² = max(0, (Q − df) / (Σw − Σw²/Σw)); random-effects weights w*_i = 1/(s_i² + τ²)

The same formulas as metafor's ``rma(yi, vi, method="FE")`` and ``method="DL"`` (checked against its
published ``dat.bcg`` example in ``tests/unit/stats/test_meta_analysis.py``). Pure: no I/O; a failed
input gives a coded result (``error``), not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MetaAnalysis", "PooledEstimate", "meta_analysis"]


@dataclass(frozen=True, slots=True)
class PooledEstimate:
    """One pooled effect: its estimate, standard error, interval and two-sided p-value (normal)."""

    estimate: float
    standard_error: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float

    def to_json(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "standard_error": self.standard_error,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "z": self.z,
            "p_value": self.p_value,
        }


@dataclass(frozen=True, slots=True)
class MetaAnalysis:
    """The fixed-effect pooled estimate, heterogeneity (Q, I², τ²) and the DerSimonian–Laird estimate."""

    experiments: int
    """k: the estimates pooled."""
    alpha: float
    fixed: PooledEstimate | None
    random: PooledEstimate | None
    """DerSimonian–Laird random effects (equal to ``fixed`` when τ² = 0)."""
    q: float | None
    """Cochran's Q."""
    q_df: int | None
    q_p_value: float | None
    i_squared: float | None
    """max(0, (Q − df)/Q), in [0, 1] (0 when Q = 0); None for one experiment (k = 1)."""
    tau_squared: float | None
    """DerSimonian–Laird between-experiment variance."""
    error: str | None = None
    """``no_experiments`` (nothing to pool) or ``invalid_standard_error`` (not finite or ≤ 0)."""

    def to_json(self) -> dict[str, object]:
        return {
            "experiments": self.experiments,
            "alpha": self.alpha,
            "fixed_effect": self.fixed.to_json() if self.fixed else None,
            "random_effects": self.random.to_json() if self.random else None,
            "q": self.q,
            "q_df": self.q_df,
            "q_p_value": self.q_p_value,
            "i_squared": self.i_squared,
            "tau_squared": self.tau_squared,
            "error": self.error,
        }


def _failed(k: int, alpha: float, error: str) -> MetaAnalysis:
    return MetaAnalysis(k, alpha, None, None, None, None, None, None, None, error)


def _pooled(estimates: Sequence[float], weights: Sequence[float], alpha: float) -> PooledEstimate:
    from scipy import stats

    total = math.fsum(weights)
    mu = math.fsum(w * y for w, y in zip(weights, estimates, strict=True)) / total
    se = 1.0 / math.sqrt(total)
    z = mu / se
    critical = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(z)))
    return PooledEstimate(mu, se, mu - critical * se, mu + critical * se, z, p)


def meta_analysis(
    estimates: Sequence[float], standard_errors: Sequence[float], *, alpha: float = 0.05
) -> MetaAnalysis:
    """Pool ``estimates`` (one per experiment) with their ``standard_errors``; see the module docstring."""
    from scipy import stats

    if len(estimates) != len(standard_errors):
        raise ValueError("estimates and standard_errors must have the same length")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    k = len(estimates)
    if k == 0:
        return _failed(0, alpha, "no_experiments")
    values = [float(y) for y in estimates]
    errors = [float(s) for s in standard_errors]
    if not all(math.isfinite(y) for y in values) or not all(math.isfinite(s) and s > 0 for s in errors):
        return _failed(k, alpha, "invalid_standard_error")
    weights = [1.0 / (s * s) for s in errors]
    fixed = _pooled(values, weights, alpha)
    df = k - 1
    if df == 0:  # one experiment: nothing to be heterogeneous about
        return MetaAnalysis(k, alpha, fixed, fixed, 0.0, 0, None, None, 0.0)
    q = math.fsum(w * (y - fixed.estimate) ** 2 for w, y in zip(weights, values, strict=True))
    q_p = float(stats.chi2.sf(q, df))
    i_squared = max(0.0, (q - df) / q) if q > 0 else 0.0
    total = math.fsum(weights)
    c = total - math.fsum(w * w for w in weights) / total
    tau_squared = max(0.0, (q - df) / c) if c > 0 else 0.0
    random_weights = [1.0 / (s * s + tau_squared) for s in errors]
    random = _pooled(values, random_weights, alpha)
    return MetaAnalysis(k, alpha, fixed, random, q, df, q_p, i_squared, tau_squared)
