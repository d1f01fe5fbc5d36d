"""The worker's paced garbage collector: automatic collection off inside, collections at batch boundaries."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipelines.gc_pacing import PacedCollector


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector_on() -> Iterator[None]:
    """Automatic collection on for the test (as in a fresh process), restored after."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def _cycles(count: int) -> None:
    """``count`` unreachable reference cycles: garbage only the collector frees."""
    for _ in range(count):
        a: list[object] = []
        a.append(a)


@pytest.mark.usefixtures("collector_on")
def test_automatic_collection_is_off_inside_and_restored_after() -> None:
    with PacedCollector() as collector:
        assert collector.active
        assert not gc.isenabled()
    assert gc.isenabled()
    assert not collector.active


@pytest.mark.usefixtures("collector_on")
def test_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError), PacedCollector():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_leaves_a_collector_someone_else_turned_off_alone() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with PacedCollector() as collector:
            assert not collector.active
            assert collector.after_batch() is False
        assert not gc.isenabled()  # not turned on behind the owner's back
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("collector_on")
def test_not_wanted_changes_nothing() -> None:
    with PacedCollector(enabled=False) as collector:
        assert gc.isenabled()
        assert collector.after_batch() is False
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_young_collection_once_enough_objects_accumulated() -> None:
    clock = _Clock()
    with PacedCollector(full_every=60, young_after=5_000, clock=clock) as collector:
        gc.collect()
        keep = [[i] for i in range(1_000)]  # survivors, below the threshold
        assert collector.after_batch() is False
        assert collector.young_collections == 0
        _cycles(200)
        keep += [[i] for i in range(6_000)]
        assert gc.get_count()[0] >= 5_000
        assert collector.after_batch() is True
        assert (collector.young_collections, collector.full_collections) == (1, 0)
        assert gc.get_count()[0] < 5_000  # the young generation was emptied
        assert len(gc.garbage) == 0
    assert len(keep) == 7_000


@pytest.mark.usefixtures("collector_on")
def test_full_collection_on_the_timer_frees_cycles() -> None:
    clock = _Clock()
    with PacedCollector(full_every=60, young_after=10**9, clock=clock) as collector:
        gc.collect()
        _cycles(500)
        clock.now += 59
        assert collector.after_batch() is False  # not yet: cycles wait (automatic collection is off)
        assert collector.full_collections == 0
        clock.now += 1
        freed: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                freed.append(info["collected"])

        gc.callbacks.append(count)
        try:
            assert collector.after_batch() is True
        finally:
            gc.callbacks.remove(count)
        assert collector.full_collections == 1
        assert sum(freed) >= 500
        clock.now += 30
        assert collector.after_batch() is False
        clock.now += 30
        assert collector.after_batch() is True
        assert collector.full_collections == 2


@pytest.mark.usefixtures("collector_on")
def test_automatic_collection_while_the_worker_keeps_up() -> None:
    clock = _Clock()
    with PacedCollector(full_every=60, young_after=10, clock=clock) as collector:
        keep = [[i] for i in range(100)]
        # A batch that was not full: automatic collection back on, nothing collected by the pacer.
        assert collector.after_batch(backlogged=False) is False
        assert gc.isenabled()
        assert not collector.active
        assert collector.young_collections == 0
        # Behind again: paced (off), with the timer restarted (no full pass right away).
        clock.now += 3600
        collector.after_batch(backlogged=True)
        assert not gc.isenabled()
        assert collector.active
        assert collector.full_collections == 0
        # Idle: keeping up, automatic again; the end of the run leaves it on.
        collector.when_idle()
        assert gc.isenabled()
    assert gc.isenabled()
    assert len(keep) == 100
