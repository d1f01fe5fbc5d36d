"""Attribution of events to first exposures, with a hand-computed example."""

from __future__ import annotations

import random
from datetime import timedelta

from pipelines.attribution import AttributionState
from tests.unit.pipeline.helpers import event, exposure, minutes


def _state(window_minutes: float = 60, hold_minutes: float = 10) -> AttributionState:
    return AttributionState(
        default_window=timedelta(minutes=window_minutes), hold=timedelta(minutes=hold_minutes)
    )


def test_hand_computed_example() -> None:
    """Window 60 min.

    u1: exp-a first at 0 (var 1; a later exposure at 5 in var 1 changes nothing), exp-b first at 30 (var 0).
    u2: exp-a first at 10 (var 0), then again at 20 in var 1 → several variations (marked).
    Events:
      p1 u1 purchase 5.0 at -1  → before every exposure          → nothing
      p2 u1 purchase 7.0 at 0   → exp-a (boundary: f <= t)        → (exp-a, 1)
      v1 u1 pageview      at 40 → exp-a (40 <= 60), exp-b (30<=40) → (exp-a, 1), (exp-b, 0)
      p3 u1 purchase 2.0 at 61  → exp-a: 61 > 60 no; exp-b: yes     → (exp-b, 0)
      p4 u2 purchase 3.0 at 70  → exp-a: 70 = 10 + 60 (boundary)    → (exp-a, 0: first exposure's variation)
      p5 u3 purchase 1.0 at 0   → u3 never exposed                  → nothing (held)
    """
    state = _state()
    now = minutes(100)
    exposures = [
        exposure("x1", "u1", "exp-a", 1, minutes(0)),
        exposure("x2", "u1", "exp-a", 1, minutes(5)),
        exposure("x3", "u1", "exp-b", 0, minutes(30)),
        exposure("x4", "u2", "exp-a", 0, minutes(10)),
        exposure("x5", "u2", "exp-a", 1, minutes(20)),
    ]
    assert state.observe_exposures(exposures, now) == []
    events = [
        event("p1", "u1", "purchase", 5.0, minutes(-1)),
        event("p2", "u1", "purchase", 7.0, minutes(0)),
        event("v1", "u1", "pageview", None, minutes(40)),
        event("p3", "u1", "purchase", 2.0, minutes(61)),
        event("p4", "u2", "purchase", 3.0, minutes(70)),
        event("p5", "u3", "purchase", 1.0, minutes(0)),
    ]
    pairs = [(a.event_id, a.experiment_key, a.variation_id) for a in state.attribute_events(events, now)]
    assert pairs == [
        ("p2", "exp-a", 1),
        ("v1", "exp-a", 1),
        ("v1", "exp-b", 0),
        ("p3", "exp-b", 0),
        ("p4", "exp-a", 0),
    ]
    assert state.units["u2"]["exp-a"].multiple_variations
    assert not state.units["u1"]["exp-a"].multiple_variations
    assert state.units["u1"]["exp-b"].first_exposed_at == minutes(30)


def test_event_before_its_exposure_is_attributed_when_the_exposure_arrives_within_hold() -> None:
    state = _state(hold_minutes=10)
    assert state.attribute_events([event("e1", "u1", at=minutes(5))], now=minutes(5)) == []
    later = state.observe_exposures([exposure("x", "u1", at=minutes(1))], now=minutes(8))
    assert [(a.event_id, a.experiment_key, a.first_exposed_at) for a in later] == [
        ("e1", "exp-a", minutes(1))
    ]
    # The same event is never attributed twice to the same experiment.
    assert state.observe_exposures([exposure("y", "u1", at=minutes(2))], now=minutes(9)) == []


def test_held_events_are_released_after_the_hold_time() -> None:
    state = _state(hold_minutes=10)
    state.attribute_events([event("e1", "u1", at=minutes(5))], now=minutes(5))
    assert state.release_expired(minutes(16)) == 1
    assert state.held_count == 0
    assert state.observe_exposures([exposure("x", "u1", at=minutes(1))], now=minutes(17)) == []


def test_held_events_are_capped() -> None:
    state = AttributionState(default_window=timedelta(hours=1), hold=timedelta(hours=1), max_held=2)
    state.attribute_events([event(f"e{i}", "u", at=minutes(i)) for i in range(3)], now=minutes(3))
    assert state.release_expired(minutes(3)) == 1 and state.held_count == 2


def test_an_earlier_exposure_arriving_late_moves_the_first_exposure_back() -> None:
    state = _state(window_minutes=60, hold_minutes=30)
    state.observe_exposures([exposure("x2", "u1", variation=1, at=minutes(20))], now=minutes(20))
    assert state.attribute_events([event("e", "u1", at=minutes(15))], now=minutes(21)) == []
    late = state.observe_exposures([exposure("x1", "u1", variation=0, at=minutes(10))], now=minutes(22))
    assert [(a.event_id, a.variation_id) for a in late] == [("e", 0)]
    assert state.units["u1"]["exp-a"].multiple_variations


def test_metric_windows_per_experiment_and_event_none_means_no_end() -> None:
    state = _state(window_minutes=60)
    state.windows = {("exp-a", "purchase"): None, ("exp-a", "pageview"): timedelta(minutes=5)}
    state.observe_exposures([exposure("x", "u1", at=minutes(0))], now=minutes(0))
    events = [
        event("p", "u1", "purchase", 1.0, minutes(10_000)),
        event("v", "u1", "pageview", None, minutes(6)),
    ]
    assert [a.event_id for a in state.attribute_events(events, now=minutes(1))] == ["p"]


def test_restored_held_events_keep_their_attributions() -> None:
    state = _state()
    state.load_unit_exposure("u1", "exp-a", minutes(0), 0, {0})
    state.load_unit_exposure("u1", "exp-b", minutes(0), 1, {1})
    state.hold_event(event("e", "u1", at=minutes(1)), minutes(1), attributed_to=["exp-a"])
    assert [(a.event_id, a.experiment_key) for a in state.attribute_held()] == [("e", "exp-b")]


def test_the_cap_releases_the_oldest_held_events_across_batches_and_units() -> None:
    state = AttributionState(default_window=timedelta(hours=1), hold=timedelta(hours=1), max_held=3)
    state.attribute_events(
        [event("a1", "ua", at=minutes(0)), event("b1", "ub", at=minutes(0))], now=minutes(1)
    )
    state.attribute_events(
        [event("a2", "ua", at=minutes(1)), event("c1", "uc", at=minutes(1))], now=minutes(2)
    )
    assert state.release_expired(minutes(2)) == 1 and state.held_count == 3  # a1 goes first
    late = state.observe_exposures(
        [exposure("x", unit, at=minutes(-1)) for unit in ("ua", "ub", "uc")], now=minutes(3)
    )
    assert sorted(a.event_id for a in late) == ["a2", "b1", "c1"]
    assert state.release_expired(minutes(62)) == 1 and state.held_count == 2  # b1, held at 1 min
    assert state.release_expired(minutes(63)) == 2 and state.held_count == 0


def test_only_releases_by_the_cap_count_as_released_early() -> None:
    """A held event released by ``max_held`` before its hold ended is counted (the worker reports it: a late
    exposure can no longer attribute it); one released at the end of its hold is not."""
    state = AttributionState(default_window=timedelta(hours=1), hold=timedelta(minutes=10), max_held=2)
    state.attribute_events([event(f"e{i}", f"u{i}", at=minutes(i)) for i in range(5)], now=minutes(5))
    assert state.release_expired(minutes(5)) == 3 and state.released_early == 3
    state.attribute_events([event("f", "u9", at=minutes(6))], now=minutes(6))
    assert state.release_expired(minutes(6)) == 1 and state.released_early == 4  # e3 goes, by the cap
    assert state.release_expired(minutes(30)) == 2 and state.released_early == 4  # their hold ended
    assert state.released == 6


def test_an_attributed_event_released_by_the_cap_is_not_counted_as_released_early() -> None:
    state = AttributionState(default_window=timedelta(hours=1), hold=timedelta(minutes=10), max_held=1)
    state.observe_exposures([exposure("x", "ua", at=minutes(0))], now=minutes(0))
    state.attribute_events(
        [
            event("a1", "ua", at=minutes(1)),
            event("a2", "ua", at=minutes(2)),
            event("b1", "ub", at=minutes(1)),
        ],
        now=minutes(2),
    )
    assert state.release_expired(minutes(2)) == 2  # a1 (attributed) and a2 (attributed) go, b1 stays
    assert state.released_early == 0
    state.attribute_events([event("c1", "uc", at=minutes(3))], now=minutes(3))
    assert state.release_expired(minutes(3)) == 1 and state.released_early == 1  # b1: unattributed


def test_dropped_units_lose_their_held_events_and_the_others_keep_their_release_order() -> None:
    """After a rebalance a worker holds its own units' events only (decision 0094)."""
    state = AttributionState(default_window=timedelta(hours=1), hold=timedelta(hours=1), max_held=10)
    state.attribute_events(
        [event("a1", "ua", at=minutes(0)), event("b1", "ub", at=minutes(0))], now=minutes(1)
    )
    state.attribute_events(
        [event(e, unit, at=minutes(1)) for e, unit in (("b2", "ub"), ("a2", "ua"), ("c1", "uc"))],
        now=minutes(2),
    )
    assert state.drop_held(lambda unit: unit != "ub") == 2 and state.held_count == 3
    assert state.drop_held(lambda unit: unit != "ub") == 0  # nothing left to drop
    late = state.observe_exposures(
        [exposure("x", unit, at=minutes(-1)) for unit in ("ua", "ub", "uc")], now=minutes(3)
    )
    assert sorted(a.event_id for a in late) == ["a1", "a2", "c1"]  # never b1, b2
    assert state.release_expired(minutes(61.5)) == 1 and state.held_count == 2  # a1, held at 1 min
    assert state.release_expired(minutes(63)) == 2 and state.held_count == 0


def test_multiple_variations_is_the_set_of_variations_seen_having_more_than_one() -> None:
    """The flag against a reference that keeps every variation seen, over random exposure orders (earlier
    ones arriving late move the first exposure and its variation) and batches, restored states included."""
    rng = random.Random(22)
    for _ in range(200):
        state, seen = _state(), {}
        restored = rng.sample(range(3), rng.randrange(3))
        for unit in restored:  # a unit restored from the warehouse with its min and max variation
            low, high = sorted(rng.choices(range(3), k=2))
            first = rng.choice([low, high])
            state.load_unit_exposure(f"u{unit}", "exp-a", minutes(50), first, {low, high})
            seen[f"u{unit}"] = {low, high}
        exposures = [
            exposure(f"x{i}", f"u{rng.randrange(3)}", "exp-a", rng.randrange(3), minutes(rng.randrange(100)))
            for i in range(rng.randrange(1, 8))
        ]
        for at in range(0, len(exposures), 3):
            state.observe_exposures(exposures[at : at + 3], now=minutes(200))
        for x in exposures:
            seen.setdefault(x.unit_id, set()).add(x.variation_id)
        for unit, variations in seen.items():
            assert state.units[unit]["exp-a"].multiple_variations == (len(variations) > 1), (unit, variations)
