"""Experiment health rules on hand-made unit counts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from assignment.registry import ExperimentSpec, VariationSpec
from quality.health_checks import HealthThresholds, VariationUnits, health_outcomes
from schemas.records import ExperimentStatus

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def spec(weights: tuple[float, ...] = (0.5, 0.5), **extra: object) -> ExperimentSpec:
    variations = tuple(VariationSpec(i, f"v{i}", f"V{i}", w) for i, w in enumerate(weights))
    return ExperimentSpec("exp", "exp", ExperimentStatus.RUNNING, "exp", variations, **extra)  # type: ignore[arg-type]


def rows(*counts: int, **extra: int) -> list[VariationUnits]:
    return [
        VariationUnits(i, n, eligible_units=n, srm_units=n, units_without_events=n // 4, **extra)
        for i, n in enumerate(counts)
    ]


def by_check(outcomes: list) -> dict:  # type: ignore[type-arg]
    return {o.check: o for o in outcomes}


def test_an_8_percent_srm_fails_and_a_fair_split_passes() -> None:
    skewed = by_check(
        health_outcomes(spec(), rows(10000, 9200), HealthThresholds(), planned_units=None, now=NOW)
    )
    assert not skewed["srm"].success
    assert skewed["srm"].observed["p_value"] < 1e-6
    assert (
        "SAMPLE RATIO MISMATCH" in skewed["srm"].detail and "v1 9200 (expected 9600)" in skewed["srm"].detail
    )
    fair = by_check(
        health_outcomes(spec(), rows(10000, 10050), HealthThresholds(), planned_units=None, now=NOW)
    )
    assert fair["srm"].success
    weighted = health_outcomes(
        spec((0.8, 0.2)), rows(8000, 2000), HealthThresholds(), planned_units=None, now=NOW
    )
    assert by_check(weighted)["srm"].success


def test_srm_threshold_is_configurable() -> None:
    counts = rows(1000, 900)  # p ≈ 0.026
    assert by_check(health_outcomes(spec(), counts, HealthThresholds(), planned_units=None, now=NOW))[
        "srm"
    ].success
    strict = HealthThresholds(srm_p_value=0.05)
    assert not by_check(health_outcomes(spec(), counts, strict, planned_units=None, now=NOW))["srm"].success


def test_shares_and_tracking() -> None:
    counts = [
        VariationUnits(
            0, 1000, srm_units=1000, multiple_units=30, overridden_units=120, units_without_events=100
        ),
        VariationUnits(
            1, 1000, srm_units=1000, multiple_units=0, overridden_units=0, units_without_events=990
        ),
    ]
    found = by_check(health_outcomes(spec(), counts, HealthThresholds(), planned_units=None, now=NOW))
    assert (
        not found["multiple_variations"].success and found["multiple_variations"].observed["share"] == 0.015
    )
    assert (
        not found["overridden"].success and "120 of 2000 units were overridden" in found["overridden"].detail
    )
    assert (
        not found["units_without_events"].success
        and "99.0% of v1's units" in found["units_without_events"].detail
    )


def test_small_experiments_are_not_judged_and_sample_size_progress() -> None:
    small = by_check(health_outcomes(spec(), rows(30, 10), HealthThresholds(), planned_units=None, now=NOW))
    assert all(o.success for o in small.values()) and "not judged yet" in small["srm"].detail
    started = spec(start_at=datetime(2026, 11, 15, tzinfo=UTC), stop_at=datetime(2026, 11, 30, tzinfo=UTC))
    slow = by_check(
        health_outcomes(started, rows(500, 500), HealthThresholds(), planned_units=10000, now=NOW)
    )
    assert not slow["sample_size"].success and slow["sample_size"].severity == "warning"
    assert (
        slow["sample_size"].observed["progress"] == 0.1
        and slow["sample_size"].observed["projected_units"] == 1429
    )
    on_pace = health_outcomes(started, rows(500, 500), HealthThresholds(), planned_units=1400, now=NOW)
    assert by_check(on_pace)["sample_size"].success
