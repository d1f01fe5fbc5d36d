"""Planning (``xp plan``): units per method against closed forms, published inflation factors and a
seeded simulation of the group-sequential test at the planned units."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from jobs.stats.group_sequential import group_sequential_boundaries
from jobs.stats.planning import plan_method, units_needed
from jobs.stats.power import power
from xpcore.errors import ValidationError

Z = NormalDist().inv_cdf
SIGMA2, DELTA = 0.09, 0.01  # a 10 % conversion rate, one point of lift


def test_fixed_horizon_is_the_closed_form() -> None:
    """n = 2σ²(z_{1−α/2} + z_{power})²/δ² (the other tail adds < 10⁻⁶ of power here)."""
    for alpha, target in ((0.05, 0.8), (0.01, 0.9), (0.1, 0.8)):
        n, achieved = units_needed("frequentist", DELTA, SIGMA2, alpha=alpha, target_power=target)
        closed = 2 * SIGMA2 * (Z(1 - alpha / 2) + Z(target)) ** 2 / DELTA**2
        assert n == math.ceil(closed - 1e-6) or n == math.ceil(closed) + 1
        assert achieved >= target > power(DELTA, SIGMA2, n - 1, alpha=alpha)


def test_one_look_group_sequential_is_the_fixed_horizon() -> None:
    fixed, _ = units_needed("frequentist", DELTA, SIGMA2)
    for method in ("group_sequential_obf", "group_sequential_pocock"):
        n, _ = units_needed(method, DELTA, SIGMA2, planned_looks=1)
        assert abs(n - fixed) <= 1


def test_group_sequential_inflation_is_the_published_one() -> None:
    """Five looks, α = 0.05, 80 % power: O'Brien–Fleming-type spending needs ~2.5 % more units than the
    fixed design, Pocock-type ~21 % (Jennison & Turnbull 2000, tables 2.3 and 2.4 for the classical
    boundaries: 1.028 and 1.207; Lan–DeMets spending is within a point of them)."""
    fixed, _ = units_needed("frequentist", DELTA, SIGMA2)
    obf, _ = units_needed("group_sequential_obf", DELTA, SIGMA2, planned_looks=5)
    pocock, _ = units_needed("group_sequential_pocock", DELTA, SIGMA2, planned_looks=5)
    assert 1.015 < obf / fixed < 1.035
    assert 1.19 < pocock / fixed < 1.23


@pytest.mark.parametrize("method", ["group_sequential_obf", "group_sequential_pocock"])
def test_seeded_simulation_reaches_the_planned_power(method: str) -> None:
    """Paths of the z-statistic at the planned units, 4 looks: the share crossing a boundary ≈ 0.8."""
    looks, runs = 4, 40_000
    n, achieved = units_needed(method, DELTA, SIGMA2, planned_looks=looks)
    times = tuple(k / looks for k in range(1, looks + 1))
    spending = "obrien_fleming" if method.endswith("obf") else "pocock"
    bounds = np.array(group_sequential_boundaries(times, 0.05, spending))
    rng = np.random.default_rng(16)
    drift = DELTA / math.sqrt(2 * SIGMA2 / n)
    increments = rng.normal(0.0, math.sqrt(1 / looks), (runs, looks)) + drift / looks
    score = np.cumsum(increments, axis=1)  # S(t) = Z·√t, a Brownian motion with drift
    z = score / np.sqrt(np.array(times))
    crossed = float(np.mean(np.any(np.abs(z) >= bounds, axis=1)))
    assert crossed == pytest.approx(achieved, abs=4 * math.sqrt(0.16 / runs))
    assert achieved == pytest.approx(0.8, abs=0.002)
    # Under H0 the same simulation rejects at ≤ α.
    null = np.cumsum(rng.normal(0.0, math.sqrt(1 / looks), (runs, looks)), axis=1) / np.sqrt(np.array(times))
    assert float(np.mean(np.any(np.abs(null) >= bounds, axis=1))) < 0.05 + 4 * math.sqrt(0.05 * 0.95 / runs)


def test_sequential_tunes_n_star_to_the_plan() -> None:
    n, achieved = units_needed("sequential", DELTA, SIGMA2, variations=3)
    tuned = power(DELTA, SIGMA2, n, method="sequential", tuning_parameter=3 * n)
    assert achieved == tuned >= 0.8
    assert power(DELTA, SIGMA2, n - 1, method="sequential", tuning_parameter=3 * (n - 1)) < 0.8
    fixed, _ = units_needed("frequentist", DELTA, SIGMA2)
    assert fixed < n < 3 * fixed  # the price of peeking at any time


def test_days_and_totals() -> None:
    plan = plan_method("frequentist", DELTA, SIGMA2, units_per_day=1000.0, variations=3)
    assert plan.total_units == 3 * plan.units_per_variation
    assert plan.days == math.ceil(plan.total_units / 1000)
    assert plan_method("frequentist", DELTA, SIGMA2, units_per_day=0.0).days is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "bayesian"}, "no power calculation"),
        ({"effect": 0.0}, "non-zero"),
        ({"effect": math.inf}, "non-zero"),
        ({"unit_variance": 0.0}, "unit_variance"),
        ({"target_power": 1.0}, "target power"),
        ({"variations": 1}, "at least 2 variations"),
        ({"method": "group_sequential_obf", "planned_looks": 0}, "planned_looks"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "method": "frequentist",
        "effect": DELTA,
        "unit_variance": SIGMA2,
        **kwargs,
    }
    method, effect, variance = (
        arguments.pop("method"),
        arguments.pop("effect"),
        arguments.pop("unit_variance"),
    )
    with pytest.raises(ValidationError, match=message):
        units_needed(method, effect, variance, **arguments)  # type: ignore[arg-type]
