"""Statistics engine throughput: one experiment's full results grid from sufficient statistics.

20 metrics × 3 variations × 10 segments, every method, compared in the same run with scipy's
``ttest_ind_from_stats`` on the same sums (a baseline that does less: no delta method, no relative lift).
The group-sequential methods run at the experiment's look (half of ``planned_units``, 5 planned looks),
as a results computation passes it; their first call also prepares that look's repeated p-values.

    .venv/bin/python bench/bench_stats.py
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats

from assignment.analysis_block import METHODS
from jobs.stats import ProportionStatistic, SampleMeanStatistic, Statistic, compare_variations

METRICS, VARIATIONS, SEGMENTS = 20, 3, 10


def main() -> None:
    rng = np.random.default_rng(0)
    grid: list[list[Statistic]] = []
    for metric in range(METRICS):
        for _ in range(SEGMENTS):
            n = rng.integers(40_000, 60_000, VARIATIONS)
            if metric % 2:
                grid.append([ProportionStatistic(int(k), int(rng.binomial(k, 0.1))) for k in n])
            else:
                sums = [float(rng.normal(5 * k, np.sqrt(k) * 3)) for k in n]
                grid.append(
                    [
                        SampleMeanStatistic(int(k), s, s * s / k + 9.0 * (k - 1))
                        for k, s in zip(n, sums, strict=True)
                    ]
                )
    compare_variations(grid[0], method="frequentist")  # warm-up: scipy.special import
    planned = 2 * sum(s.n for s in grid[0]) * SEGMENTS
    for method in METHODS:
        start = time.perf_counter()
        for cell in grid:
            compare_variations(
                cell,
                method=method,  # type: ignore[arg-type]
                difference="relative",
                planned_units=planned,
                information_fraction=0.5,
            )
        elapsed = time.perf_counter() - start
        print(f"{method:24s} {len(grid) * (VARIATIONS - 1):5d} comparisons in {elapsed * 1000:7.1f} ms")
    start = time.perf_counter()
    for cell in grid:
        control = cell[0]
        assert isinstance(control, SampleMeanStatistic | ProportionStatistic)
        for treatment in cell[1:]:
            assert isinstance(treatment, SampleMeanStatistic | ProportionStatistic)
            stats.ttest_ind_from_stats(
                treatment.mean,
                np.sqrt(treatment.variance),
                treatment.n,
                control.mean,
                np.sqrt(control.variance),
                control.n,
                equal_var=False,
            )
    elapsed = time.perf_counter() - start
    print(
        f"{'scipy (abs)':24s} {len(grid) * (VARIATIONS - 1):5d} comparisons in {elapsed * 1000:7.1f} ms",
        "(baseline)",
    )


if __name__ == "__main__":
    main()
