"""Group-sequential boundaries (Lan–DeMets spending) against published values, and a seeded simulation
of 20 planned looks (issue #16; the full table is in docs/statistics.md, bench/sim_stats_calibration.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from assignment.analysis_block import METHODS
from jobs.stats import ProportionStatistic, compare_variations
from jobs.stats.group_sequential import (
    crossing_probability,
    group_sequential_boundaries,
    look_times,
    repeated_p_value,
    spent_alpha,
)
from jobs.stats.results import Method
from xpcore.errors import ValidationError

FIVE_LOOKS = (0.2, 0.4, 0.6, 0.8, 1.0)


def test_obf_and_pocock_boundaries_for_five_equal_looks_match_ldbounds() -> None:
    """Two-sided α = 0.05, 5 equally spaced looks, as R's ldbounds prints them
    (``ldBounds(t = seq(0.2, 1, 0.2), iuse = 1)`` and ``iuse = 2``; Reboussin, DeMets, Kim & Lan 2000,
    the standard design also tabulated by gsDesign with ``sfLDOF``/``sfLDPocock`` at one-sided 0.025)."""
    obf = group_sequential_boundaries(FIVE_LOOKS, 0.05, "obrien_fleming")
    pocock = group_sequential_boundaries(FIVE_LOOKS, 0.05, "pocock")
    assert obf == pytest.approx((4.8769, 3.3569, 2.6803, 2.2898, 2.0310), abs=2e-4)
    assert pocock == pytest.approx((2.4380, 2.4268, 2.4101, 2.3966, 2.3859), abs=2e-4)


def test_one_sided_obf_boundaries_match_seqbounds_jl() -> None:
    """SeqBounds.jl README (PharmCat/SeqBounds.jl): one-sided α = 0.05, looks at 0.25, 0.5, 0.75, 1, O'Brien–
    Fleming spending: z = 3.74955, 2.53993, 2.01604, 1.72014 (their grid step 0.05). A one-sided design at α
    is a symmetric two-sided one at 2α up to the chance of crossing the far side first (< 10⁻⁶ here)."""
    bounds = group_sequential_boundaries((0.25, 0.5, 0.75, 1.0), 0.10, "obrien_fleming")
    assert bounds == pytest.approx((3.74955, 2.53993, 2.01604, 1.72014), abs=1e-4)


@pytest.mark.parametrize(
    ("looks", "pocock", "obrien_fleming"),
    [(2, 2.178, 1.977), (3, 2.289, 2.004), (4, 2.361, 2.024), (5, 2.413, 2.040), (10, 2.555, 2.087)],
)
def test_the_recursion_gives_alpha_for_jennison_and_turnbulls_classical_constants(
    looks: int, pocock: float, obrien_fleming: float
) -> None:
    """Jennison & Turnbull (2000), Tables 2.1 and 2.3: the constants C_P(K, 0.05) of Pocock's test
    (boundary C_P at every look) and C_B(K, 0.05) of O'Brien & Fleming's (C_B·√(K/k)), given to 3
    decimals, make the two-sided type I error 0.05. Rounding to 3 decimals moves it by < 2·10⁻⁴."""
    times = tuple(k / looks for k in range(1, looks + 1))
    assert crossing_probability(times, (pocock,) * looks) == pytest.approx(0.05, abs=2e-4)
    constant = tuple(obrien_fleming * math.sqrt(looks / k) for k in range(1, looks + 1))
    assert crossing_probability(times, constant) == pytest.approx(0.05, abs=2e-4)


def test_spending_boundaries_spend_exactly_alpha_and_keep_most_of_the_power() -> None:
    """The spending design crosses with probability α under H0; with the drift that gives a single
    look 80 % power (z_{0.975} + z_{0.8}), O'Brien–Fleming over 20 looks keeps ≥ 0.77."""
    drift = 1.959964 + 0.841621
    assert crossing_probability((1.0,), (1.959964,), drift) == pytest.approx(0.8, abs=1e-4)
    times = tuple(k / 20 for k in range(1, 21))
    for spending, floor in (("obrien_fleming", 0.77), ("pocock", 0.68)):
        bounds = group_sequential_boundaries(times, 0.05, spending)  # type: ignore[arg-type]
        assert crossing_probability(times, bounds) == pytest.approx(0.05, abs=1e-5)
        assert floor <= crossing_probability(times, bounds, drift) < 0.8


def test_spending_functions_spend_alpha_by_the_end() -> None:
    for spending in ("obrien_fleming", "pocock"):
        assert spent_alpha(1.0, 0.05, spending) == 0.05  # type: ignore[arg-type]
        assert spent_alpha(0.5, 0.05, spending) < 0.05  # type: ignore[arg-type]
    assert spent_alpha(0.2, 0.05, "obrien_fleming") < 1e-5 < spent_alpha(0.2, 0.05, "pocock")


def test_look_times_are_the_planned_looks_before_now_then_now() -> None:
    assert look_times(0.5, 4) == (0.25, 0.5)
    assert look_times(0.6, 4) == (0.25, 0.5, 0.6)
    assert look_times(1.7, 4) == (0.25, 0.5, 0.75, 1.0)
    with pytest.raises(ValidationError):
        look_times(0.5, 0)


def test_repeated_p_value_is_alpha_at_the_boundary_and_close_to_the_exact_inversion() -> None:
    times = look_times(0.6, 5)
    bound = group_sequential_boundaries(times, 0.05, "obrien_fleming")[-1]
    assert repeated_p_value(bound, times, 0.05, "obrien_fleming") == pytest.approx(0.05, rel=1e-9)
    z = 3.1
    exact = optimize.brentq(
        lambda level: group_sequential_boundaries(times, level, "obrien_fleming")[-1] - z, 1e-8, 0.5
    )
    assert repeated_p_value(z, times, 0.05, "obrien_fleming") == pytest.approx(exact, rel=0.005)


@pytest.mark.parametrize("method", ["group_sequential_obf", "group_sequential_pocock"])
def test_a_group_sequential_result_is_significant_exactly_when_p_is_below_alpha(method: Method) -> None:
    for conversions in (100, 118, 125, 140):
        result = compare_variations(
            [ProportionStatistic(1000, 100), ProportionStatistic(1000, conversions)],
            method=method,
            planned_units=5000,
        )[0]
        assert result.p_value is not None
        assert result.significant == (result.p_value < 0.05)
    with pytest.raises(ValidationError, match="planned_units"):
        compare_variations([ProportionStatistic(10, 1), ProportionStatistic(10, 2)], method=method)


def test_every_method_name_is_accepted_by_the_engine() -> None:
    statistics = [ProportionStatistic(1000, 100), ProportionStatistic(1000, 120)]
    for method in METHODS:
        (result,) = compare_variations(statistics, method=method, planned_units=4000)  # type: ignore[arg-type]
        assert result.method == method and result.error is None


@pytest.mark.slow
def test_twenty_planned_looks_keep_the_false_positive_rate_and_most_of_the_power() -> None:
    """2,000 A/A and 2,000 A/B experiments (10 % conversion, +17 % lift: fixed-horizon power ≈ 0.8), 20
    looks of 250 units per arm, planned 10,000 units: the engine's boundaries on the z statistics."""
    runs, looks, batch = 2000, 20, 250
    rng = np.random.default_rng(20261206)
    units = batch * np.arange(1, looks + 1)

    def z_paths(rate_b: float) -> np.ndarray:
        a = np.cumsum(rng.binomial(batch, 0.10, (runs, looks)), axis=1) / units
        b = np.cumsum(rng.binomial(batch, rate_b, (runs, looks)), axis=1) / units
        se = np.sqrt(a * (1 - a) / (units - 1) + b * (1 - b) / (units - 1))
        return np.asarray((b - a) / se)

    null, alternative = z_paths(0.10), z_paths(0.117)
    times = tuple(k / looks for k in range(1, looks + 1))
    fixed_power = float(np.mean(np.abs(alternative[:, -1]) > 1.959964))
    for spending in ("obrien_fleming", "pocock"):
        bounds = np.array(group_sequential_boundaries(times, 0.05, spending))  # type: ignore[arg-type]
        false_positive = float(np.mean((np.abs(null) > bounds).any(axis=1)))
        power = float(np.mean((np.abs(alternative) > bounds).any(axis=1)))
        print(
            f"\n{spending}: A/A FPR {false_positive:.4f}, power {power:.3f} (fixed horizon {fixed_power:.3f})"
        )
        # ±3 binomial sd of a 0.05 rate over 2,000 runs: 0.0146
        assert false_positive <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
        floor = 0.9 if spending == "obrien_fleming" else 0.8
        assert power >= floor * fixed_power
    naive = float(np.mean((np.abs(null) > 1.959964).any(axis=1)))
    assert naive > 0.15  # the same paths tested naively at every look: the boundaries matter


def test_a_segment_is_analysed_at_the_whole_experiments_look() -> None:
    """A segment with a tenth of the units is at the experiment's fraction when told, not at its own."""
    segment = [ProportionStatistic(200, 20), ProportionStatistic(200, 32)]
    own = compare_variations(segment, method="group_sequential_pocock", planned_units=4000)[0]
    told = compare_variations(
        segment, method="group_sequential_pocock", planned_units=4000, information_fraction=1.0
    )[0]
    assert told.ci_low is not None and own.ci_low is not None and told.ci_high is not None
    # the last look's boundary (what is left of α) is smaller than the first look's at t = 0.1
    assert told.ci_low > own.ci_low and told.ci_high < own.ci_high  # type: ignore[operator]
    assert compare_variations(segment, method="group_sequential_obf", planned_units=4000, planned_looks=None)
