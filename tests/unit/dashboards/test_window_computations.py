"""Background computations of custom results views: single-flight, bounded LRU, max age, failure back-off.

The computations run when the test says so (an injected ``spawn`` keeps them), and time is a fake clock:
no sleeping, nothing timed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboards.window_computations import TooManyComputations, WindowComputations
from xpcore.errors import TransientError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Held:
    """Spawned computations, run one by one when the test calls :meth:`run`."""

    def __init__(self) -> None:
        self.started: list[Callable[[], None]] = []

    def __call__(self, target: Callable[[], None], name: str) -> None:
        self.started.append(target)

    def run(self) -> None:
        while self.started:
            self.started.pop(0)()


def board(clock: Clock, held: Held, **options: Any) -> WindowComputations[str]:
    return WindowComputations(
        clock=clock, wall_clock=lambda: datetime(2026, 11, 26, tzinfo=UTC), spawn=held, **options
    )


def test_one_computation_per_view_and_the_result_is_reused() -> None:
    clock, held, calls = Clock(), Held(), []
    views = board(clock, held)

    def compute() -> str:
        calls.append(1)
        return "result A"

    first = views.request(("exp", "A"), compute)
    clock.now += 3
    second = views.request(("exp", "A"), compute)
    assert first.state == second.state == "queued" and first.started_here and not second.started_here
    assert second.elapsed_seconds == 3 and second.poll_after_seconds() == 1
    assert len(held.started) == 1  # the second request joined the first
    held.run()
    clock.now += 10
    done = views.request(("exp", "A"), compute)
    assert done.state == "done" and done.result == "result A" and done.age_seconds == 10
    assert done.elapsed_seconds == 3 and calls == [1] and held.started == []
    other = views.request(("exp", "B"), compute)  # another view: its own computation
    assert other.pending and len(held.started) == 1


def test_a_result_older_than_max_age_is_computed_again() -> None:
    clock, held = Clock(), Held()
    views = board(clock, held, max_age=60)
    results = iter(["old", "new"])
    views.request("v", lambda: next(results))
    held.run()
    clock.now += 59
    assert views.request("v", lambda: next(results)).result == "old"
    clock.now += 1
    again = views.request("v", lambda: next(results))
    assert again.pending and again.started_here
    held.run()
    assert views.request("v", lambda: "unused").result == "new"


def test_the_cache_is_a_bounded_lru() -> None:
    clock, held = Clock(), Held()
    views = board(clock, held, entries=2)
    for name in ("a", "b"):
        views.request(name, lambda name=name: name)  # type: ignore[misc]
        held.run()
    assert views.request("a", lambda: "unused").state == "done"  # a: used most recently
    views.request("c", lambda: "c")
    held.run()
    assert len(views) == 2
    assert views.peek("b") is None  # least recently used: dropped
    assert views.peek("a") is not None and views.peek("c") is not None


def test_a_failure_is_shown_for_a_while_then_retried_not_in_a_hot_loop() -> None:
    clock, held, calls = Clock(), Held(), []
    views = board(clock, held, retry_after_failure=30)

    def boom() -> str:
        calls.append(1)
        raise TransientError("warehouse unreachable")

    views.request("v", boom)
    held.run()
    for step in range(3):  # a polling page: the same error, no new computation
        failed = views.request("v", boom)
        assert failed.state == "failed" and isinstance(failed.error, TransientError)
        assert failed.retry_in_seconds == 30 - 10 * step
        clock.now += 10
    assert calls == [1] and held.started == []
    retried = views.request("v", lambda: "fine")  # the back-off is over: the next request tries again
    assert retried.pending and retried.started_here
    held.run()
    assert views.request("v", boom).result == "fine" and calls == [1]


def test_too_many_views_in_flight_are_refused() -> None:
    clock, held = Clock(), Held()
    views = board(clock, held, entries=2)
    views.request("a", lambda: "a")
    views.request("b", lambda: "b")
    with pytest.raises(TooManyComputations):
        views.request("c", lambda: "c")
    assert views.request("a", lambda: "a").pending  # joining one in flight is still fine
    held.run()
    assert views.request("c", lambda: "c").started_here


def test_clear_forgets_finished_results_only() -> None:
    clock, held = Clock(), Held()
    views = board(clock, held)
    views.request("done", lambda: "x")
    held.run()
    views.request("running", lambda: "y")
    views.clear()
    assert views.peek("done") is None and views.peek("running") is not None
    held.run()
    assert views.peek("running") is not None and views.peek("running").result == "y"  # type: ignore[union-attr]


def test_threads_single_flight_and_wait_for_the_same_computation() -> None:
    """Real threads: many requests at once start one computation; ``wait`` returns its result."""
    views: WindowComputations[str] = WindowComputations(workers=1)
    gate, calls = threading.Event(), []

    def compute() -> str:
        calls.append(1)
        assert gate.wait(30)
        return "slow result"

    answers = []
    requests = [
        threading.Thread(target=lambda: answers.append(views.request("v", compute))) for _ in range(8)
    ]
    for thread in requests:
        thread.start()
    for thread in requests:
        thread.join(30)
    assert len(answers) == 8 and all(a.pending for a in answers)
    assert sum(a.started_here for a in answers) == 1
    waiter = threading.Thread(target=lambda: answers.append(views.wait("v", 30)))  # type: ignore[arg-type]
    waiter.start()
    gate.set()
    waiter.join(30)
    assert answers[-1].state == "done" and answers[-1].result == "slow result"
    assert calls == [1]
    views.wait_all(30)
    assert views.request("v", compute).result == "slow result" and calls == [1]
