"""The quantile-metric simulation tables of docs/statistics.md (decision 0083); seeded, so the figures
reproduce exactly:

    .venv/bin/python -m tests.unit.stats.quantile_tables

A/A false-positive rate at α = 0.05 and 0.01 and coverage of the true p-quantile difference (treatment ×1.1)
for per-unit quantiles (lognormal values), and A/A rates of per-event quantiles with the cluster-robust
variance against the naive i.i.d. one (correlated events within units). Not a test (no assertions); the
suite's fast versions are in test_quantiles.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from jobs.stats.analysis import compare_variations
from jobs.stats.quantiles import QuantileStatistic, clustered_quantile_statistic, quantile_statistic

RUNS = 4000


def _significant(a: QuantileStatistic, b: QuantileStatistic, alpha: float, difference: str) -> bool:
    return compare_variations([a, b], method="frequentist", alpha=alpha, difference=difference)[0].significant  # type: ignore[arg-type]


def per_unit_rows(units: int) -> list[str]:
    rows = []
    for nu in (0.5, 0.9, 0.99):
        rng = np.random.default_rng(int(nu * 1000) + units)
        true_difference = 0.1 * math.exp(1.0 + float(special.ndtri(nu)))
        fp05 = fp01 = fp_rel = covered = 0
        for _ in range(RUNS):
            a = quantile_statistic(rng.lognormal(1.0, 1.0, units), nu)
            b = quantile_statistic(rng.lognormal(1.0, 1.0, units), nu)
            fp05 += _significant(a, b, 0.05, "absolute")
            fp01 += _significant(a, b, 0.01, "absolute")
            fp_rel += _significant(a, b, 0.05, "relative")
            c = quantile_statistic(1.1 * rng.lognormal(1.0, 1.0, units), nu)
            result = compare_variations([a, c], method="frequentist", difference="absolute")[0]
            covered += result.ci_low is not None and result.ci_low <= true_difference <= result.ci_high  # type: ignore[operator]
        rows.append(
            f"| p{round(nu * 100)} | {units:,} | {fp05 / RUNS:.4f} | {fp_rel / RUNS:.4f} | {fp01 / RUNS:.4f} "
            f"| {covered / RUNS:.4f} |"
        )
    return rows


def per_event_rows(units: int) -> list[str]:
    rows = []
    for nu in (0.5, 0.9):
        rng = np.random.default_rng(7000 + int(nu * 100))
        clustered = naive = 0
        for _ in range(RUNS):
            arms = []
            for _arm in range(2):
                counts = 1 + rng.poisson(5.0, units)
                owner = np.repeat(np.arange(units), counts)
                values = np.exp(rng.normal(0.0, 1.0, units)[owner] + rng.normal(0.0, 0.4, owner.size))
                arms.append((values, owner))
            clustered += _significant(
                *(clustered_quantile_statistic(v, o, nu) for v, o in arms), 0.05, "absolute"
            )
            naive += _significant(*(quantile_statistic(v, nu) for v, _ in arms), 0.05, "absolute")
        rows.append(f"| p{round(nu * 100)} | {units:,} | {clustered / RUNS:.4f} | {naive / RUNS:.4f} |")
    return rows


def main() -> None:
    print(
        f"per unit, {RUNS:,} runs each: quantile | units per arm | A/A α=0.05 abs | rel | α=0.01 | coverage"
    )
    for units in (1000, 5000):
        print("\n".join(per_unit_rows(units)))
    print(f"per event, {RUNS:,} runs each: quantile | units per arm | A/A α=0.05 clustered | naive i.i.d.")
    print("\n".join(per_event_rows(400)))


if __name__ == "__main__":
    main()
