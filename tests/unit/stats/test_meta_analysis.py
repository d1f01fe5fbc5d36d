"""Meta-analysis across experiments (``jobs/stats/meta_analysis.py``): a published reference and a simulation.

Reference: the BCG vaccine trials (Colditz et al. 1994), ``dat.bcg`` in R's metafor/metadat, as analysed
in W. Viechtbauer, *Conducting meta-analyses in R with the metafor package*, Journal of Statistical
Software 36(3), 2010, and in metafor's ``rma.uni`` documentation: log risk ratios from
``escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)``, then

- ``rma(yi, vi, method="FE")``: estimate −0.4303, se 0.0405, z −10.6247, CI [−0.5097, −0.3509],
  Q(df = 12) = 152.2330;
- ``rma(yi, vi, method="DL")``: τ² = 0.3088, I² = 92.12 %, estimate −0.7141, se 0.1787, z −3.9952,
  CI [−1.0644, −0.3638].

Run with ``-s`` to print the simulation figures quoted in docs/statistics.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from jobs.stats.meta_analysis import meta_analysis
from tests.unit.stats._data import binomial_tolerance

# dat.bcg: (tpos, tneg, cpos, cneg) of the 13 trials, in the data set's order
BCG = [
    (4, 119, 11, 128),
    (6, 300, 29, 274),
    (3, 228, 11, 209),
    (62, 13536, 248, 12619),
    (33, 5036, 47, 5761),
    (180, 1361, 372, 1079),
    (8, 2537, 10, 619),
    (505, 87886, 499, 87892),
    (29, 7470, 45, 7232),
    (17, 1699, 65, 1600),
    (186, 50448, 141, 27197),
    (5, 2493, 3, 2338),
    (27, 16886, 29, 17825),
]


def _log_risk_ratios() -> tuple[list[float], list[float]]:
    """escalc(measure="RR"): yi = log((a/n1)/(c/n2)), vi = 1/a − 1/n1 + 1/c − 1/n2."""
    estimates, errors = [], []
    for a, b, c, d in BCG:
        estimates.append(math.log((a / (a + b)) / (c / (c + d))))
        errors.append(math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)))
    return estimates, errors


def test_fixed_effect_matches_metafor_on_dat_bcg() -> None:
    result = meta_analysis(*_log_risk_ratios())
    assert result.error is None and result.fixed is not None
    assert result.fixed.estimate == pytest.approx(-0.4303, abs=5e-5)
    assert result.fixed.standard_error == pytest.approx(0.0405, abs=5e-5)
    assert result.fixed.z == pytest.approx(-10.6247, abs=5e-5)
    assert result.fixed.ci_low == pytest.approx(-0.5097, abs=5e-5)
    assert result.fixed.ci_high == pytest.approx(-0.3509, abs=5e-5)
    assert result.q == pytest.approx(152.2330, abs=5e-5)
    assert result.q_df == 12
    assert result.q_p_value is not None and result.q_p_value < 1e-4  # metafor: p < .0001


def test_dersimonian_laird_and_i_squared_match_metafor_on_dat_bcg() -> None:
    result = meta_analysis(*_log_risk_ratios())
    assert result.random is not None and result.i_squared is not None and result.tau_squared is not None
    assert result.tau_squared == pytest.approx(0.3088, abs=5e-5)
    assert result.i_squared * 100 == pytest.approx(92.12, abs=5e-3)
    assert result.random.estimate == pytest.approx(-0.7141, abs=5e-5)
    assert result.random.standard_error == pytest.approx(0.1787, abs=5e-5)
    assert result.random.z == pytest.approx(-3.9952, abs=5e-5)
    assert result.random.ci_low == pytest.approx(-1.0644, abs=5e-5)
    assert result.random.ci_high == pytest.approx(-0.3638, abs=5e-5)


def test_homogeneous_estimates_have_no_heterogeneity() -> None:
    """Q below its degrees of freedom: I² and τ² are 0 and the random-effects estimate is the fixed one."""
    result = meta_analysis([0.10, 0.11, 0.09], [0.05, 0.05, 0.05])
    assert result.i_squared == 0.0 and result.tau_squared == 0.0
    assert result.fixed is not None and result.random is not None
    assert result.random.estimate == pytest.approx(result.fixed.estimate)
    assert result.fixed.estimate == pytest.approx(0.10)
    assert result.fixed.standard_error == pytest.approx(0.05 / math.sqrt(3))


def test_one_experiment_is_its_own_estimate_without_heterogeneity() -> None:
    result = meta_analysis([0.2], [0.1])
    assert result.fixed is not None and result.fixed.estimate == pytest.approx(0.2)
    assert result.q_df == 0 and result.q_p_value is None and result.i_squared is None


@pytest.mark.parametrize(
    ("estimates", "errors", "code"),
    [
        ([], [], "no_experiments"),
        ([0.1, 0.2], [0.1, 0.0], "invalid_standard_error"),
        ([0.1, float("nan")], [0.1, 0.1], "invalid_standard_error"),
        ([0.1, 0.2], [0.1, float("inf")], "invalid_standard_error"),
        ([0.1, 0.2], [-0.1, 0.1], "invalid_standard_error"),
    ],
)
def test_bad_input_is_a_coded_result(estimates: list[float], errors: list[float], code: str) -> None:
    result = meta_analysis(estimates, errors)
    assert result.error == code and result.fixed is None
    assert result.to_json()["error"] == code


@pytest.mark.slow
def test_simulation_pooled_estimate_is_unbiased_and_the_interval_covers() -> None:
    """4,000 simulated programs of 8 experiments each with a common true lift of 3 % and standard errors
    between 0.5 % and 4 %: the fixed-effect estimate is unbiased (mean within 3 standard errors of the
    mean) and its 95 % interval covers the truth at the nominal rate (±3 binomial sd); Cochran's Q rejects
    homogeneity at about α; under real heterogeneity (τ = 2 %) DerSimonian–Laird's interval covers the mean
    lift far better than the fixed-effect one."""
    rng = np.random.default_rng(20261205)
    runs, k, truth, tau = 4000, 8, 0.03, 0.02
    errors = rng.uniform(0.005, 0.04, size=(runs, k))
    homogeneous = truth + rng.normal(0.0, 1.0, size=(runs, k)) * errors
    pooled, covered, q_rejects = [], 0, 0
    for i in range(runs):
        result = meta_analysis(homogeneous[i].tolist(), errors[i].tolist())
        assert result.fixed is not None and result.q_p_value is not None
        pooled.append(result.fixed.estimate)
        covered += result.fixed.ci_low <= truth <= result.fixed.ci_high
        q_rejects += result.q_p_value < 0.05
    estimates = np.array(pooled)
    bias_se = estimates.std(ddof=1) / math.sqrt(runs)
    coverage, q_rate = covered / runs, q_rejects / runs
    heterogeneous = truth + rng.normal(0.0, tau, size=(runs, k)) + rng.normal(size=(runs, k)) * errors
    fixed_covered = random_covered = 0
    for i in range(runs):
        result = meta_analysis(heterogeneous[i].tolist(), errors[i].tolist())
        assert result.fixed is not None and result.random is not None
        fixed_covered += result.fixed.ci_low <= truth <= result.fixed.ci_high
        random_covered += result.random.ci_low <= truth <= result.random.ci_high
    print(
        f"\nmeta-analysis: mean pooled {estimates.mean():.5f} (truth {truth}, se {bias_se:.5f}); "
        f"FE coverage {coverage:.4f}; Q rejects {q_rate:.4f}; with τ = {tau}: FE coverage "
        f"{fixed_covered / runs:.4f}, DL coverage {random_covered / runs:.4f}"
    )
    assert abs(estimates.mean() - truth) < 3 * bias_se
    assert abs(coverage - 0.95) < binomial_tolerance(0.95, runs)
    assert abs(q_rate - 0.05) < binomial_tolerance(0.05, runs)
    assert random_covered / runs > fixed_covered / runs + 0.1
    assert random_covered / runs > 0.85
    # the pooled z statistic is standard normal under the truth (Kolmogorov–Smirnov, seeded)
    fixed_errors = 1 / np.sqrt((1 / errors**2).sum(axis=1))
    assert stats.kstest((estimates - truth) / fixed_errors, "norm").pvalue > 0.001
