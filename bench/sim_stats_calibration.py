"""Simulations behind docs/statistics.md "Calibration of relative lifts" and "Looks and power" (issue #16).

Every number goes through the engine (``jobs.stats.compare_variations``), seeded. Two tables:

1. A/A, binomial, relative lift, ~50 and ~250 conversions per arm: two-sided rejection at α = 0.001 and
   0.0025, the guardrail rule (95 % interval wholly below 0), Holm over families of 20 A/A tests, for
   the delta-method interval (before) and Fieller's (after), next to the absolute difference.
2. 20 looks (250 units per arm each, 10 % conversion, planned_units = 10,000): the A/A false-positive
   rate when rejecting at any look, and the power at the planned horizon (rejected by the last look)
   for a +17 % lift (fixed-horizon power ≈ 0.8), for each method.

    .venv/bin/python bench/sim_stats_calibration.py [--runs 100000] [--look-runs 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jobs.stats import ProportionStatistic, compare_variations, holm_bonferroni, is_guardrail_harmed


def tail_table(runs: int, seed: int) -> None:
    print(f"\n## A/A tail calibration, relative lift ({runs:,} runs per row)\n")
    print(
        "| conversions per arm | interval | reject α=0.001 | ×nominal | reject α=0.0025 | ×nominal "
        "| 95 % CI wholly < 0 | Holm FWER, 20 tests |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for conversions, n in ((50, 1000), (250, 5000)):
        rng = np.random.default_rng(seed + conversions)
        a = rng.binomial(n, conversions / n, runs)
        b = rng.binomial(n, conversions / n, runs)
        for label, difference, interval in (
            ("absolute", "absolute", "fieller"),
            ("relative, delta method (before)", "relative", "delta"),
            ("relative, Fieller (after)", "relative", "fieller"),
        ):
            p_values = np.ones(runs)
            harmed = np.zeros(runs, dtype=bool)
            for i in range(runs):
                (result,) = compare_variations(
                    [ProportionStatistic(n, int(a[i])), ProportionStatistic(n, int(b[i]))],
                    method="frequentist",
                    difference=difference,  # type: ignore[arg-type]
                    alpha=0.05,
                    relative_interval=interval,  # type: ignore[arg-type]
                )
                if result.p_value is not None:
                    p_values[i] = result.p_value
                harmed[i] = is_guardrail_harmed(result)
            r1, r2 = float(np.mean(p_values < 0.001)), float(np.mean(p_values < 0.0025))
            families = p_values[: runs - runs % 20].reshape(-1, 20)
            fwer = float(np.mean([min(holm_bonferroni(list(f))) < 0.05 for f in families]))
            print(
                f"| {conversions} | {label} | {r1:.5f} | {r1 / 0.001:.2f} | {r2:.5f} | {r2 / 0.0025:.2f} "
                f"| {harmed.mean():.4f} | {fwer:.3f} |"
            )


def looks_table(runs: int, seed: int) -> None:
    looks, batch, rate, lift, planned = 20, 250, 0.10, 0.17, 10_000
    print(f"\n## {looks} looks of {batch} units per arm, planned_units {planned:,} ({runs:,} runs each)\n")
    methods = (
        ("fixed horizon, every look (naive)", "frequentist", {}),
        ("fixed horizon, last look only", "frequentist", {}),
        ("sequential, N* = 5,000 (old default)", "sequential", {"tuning_parameter": 5000.0}),
        ("sequential, N* = planned_units (new default)", "sequential", {}),
        ("group-sequential OBF, 20 planned looks", "group_sequential_obf", {"planned_looks": looks}),
        ("group-sequential Pocock, 20 planned looks", "group_sequential_pocock", {"planned_looks": looks}),
    )
    rows = {label: [0, 0] for label, _, _ in methods}
    for column, treatment_rate in enumerate((rate, rate * (1 + lift))):
        rng = np.random.default_rng(seed + column)
        a = np.cumsum(rng.binomial(batch, rate, (runs, looks)), axis=1)
        b = np.cumsum(rng.binomial(batch, treatment_rate, (runs, looks)), axis=1)
        for index, (label, method, options) in enumerate(methods):
            rejected = 0
            for i in range(runs):
                ks = range(looks) if index != 1 else (looks - 1,)
                for k in ks:
                    units = batch * (k + 1)
                    (result,) = compare_variations(
                        [ProportionStatistic(units, int(a[i, k])), ProportionStatistic(units, int(b[i, k]))],
                        method=method,  # type: ignore[arg-type]
                        difference="relative",
                        alpha=0.05,
                        planned_units=planned,
                        **options,  # type: ignore[arg-type]
                    )
                    if result.significant:
                        rejected += 1
                        break
            rows[label][column] = rejected
    print("| method | A/A false-positive rate (any of 20 looks) | power at the planned horizon, +17 % lift |")
    print("|---|---|---|")
    for label, (false_positives, detections) in rows.items():
        print(f"| {label} | {false_positives / runs:.4f} | {detections / runs:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--look-runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026_12_05)
    parser.add_argument("--only", choices=("tails", "looks"))
    args = parser.parse_args()
    started = time.perf_counter()
    if args.only in (None, "tails"):
        tail_table(args.runs, args.seed)
    if args.only in (None, "looks"):
        looks_table(args.look_runs, args.seed)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
