"""Units so far: counted once, then served as a copy while one background recount runs."""

from __future__ import annotations

import threading
from typing import Any

from dashboards.units_so_far import UnitsSoFar


def counter(gate: threading.Event | None = None) -> tuple[list[int], Any]:
    calls: list[int] = []

    def count() -> list[dict[str, Any]]:
        calls.append(1)
        if gate is not None and len(calls) > 1:
            gate.wait(30)
        return [{"experiment_key": "a", "variation_id": 0, "units": len(calls)}]

    return calls, count


def test_max_age_zero_counts_on_every_request() -> None:
    calls, count = counter()
    units = UnitsSoFar(count, max_age=0)
    assert units.by_experiment("a")[0] == {0: 1}
    assert units.by_experiment("a")[0] == {0: 2}
    assert units.by_experiment("b")[0] == {} and len(calls) == 3


def test_a_young_copy_is_served_without_counting() -> None:
    calls, count = counter()
    units = UnitsSoFar(count, max_age=3600)
    first, at = units.rows()
    assert units.rows() == (first, at) and len(calls) == 1


def test_an_old_copy_is_served_while_one_background_recount_runs() -> None:
    gate = threading.Event()
    calls, count = counter(gate)
    now = [100.0]
    units = UnitsSoFar(count, max_age=5, clock=lambda: now[0])
    assert units.by_experiment("a")[0] == {0: 1}
    now[0] += 5  # as old as max_age: still young, served without a recount
    assert units.by_experiment("a")[0] == {0: 1}
    units.wait(5)  # a recount started by mistake would have counted by now
    assert len(calls) == 1
    now[0] += 0.5
    for _ in range(3):  # served at once from the copy; one recount, held by the gate
        assert units.by_experiment("a")[0] == {0: 1}
    gate.set()
    units.wait(30)
    assert len(calls) == 2
    assert units.by_experiment("a")[0] == {0: 2}
