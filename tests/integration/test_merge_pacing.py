"""Merges of the embedded store held back while the worker is behind (pipelines/merge_pacing.py), on a real
chDB store: a held-back store refuses ``OPTIMIZE`` (ClickHouse: "Cancelled merging parts") and keeps one part
per insert; a resumed one merges them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.merge_pacing import PacedMerges
from xpcore.config import WarehouseSettings
from xpcore.errors import XpError
from xpcore.warehouse import Warehouse, open_warehouse


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Warehouse]:
    """The embedded store itself (not the server-path harness: only chDB is paced), with one table."""
    store = open_warehouse(
        WarehouseSettings(home=tmp_path / "xp-home", clickhouse_url=None, store_wait_seconds=0), migrate=False
    )
    try:
        store.command("CREATE DATABASE IF NOT EXISTS xp")
        store.command("CREATE TABLE xp.paced (x UInt64) ENGINE = MergeTree ORDER BY x")
        yield store
    finally:
        store.close()


def insert_parts(store: Warehouse, count: int) -> None:
    for i in range(count):
        store.command(f"INSERT INTO xp.paced VALUES ({i})")  # one part each


def active_parts(store: Warehouse) -> int:
    rows = store.query_arrow(
        "SELECT count() AS n FROM system.parts WHERE active AND database = 'xp' AND table = 'paced'"
    ).to_pylist()
    return int(rows[0]["n"])


def merges_run(store: Warehouse) -> bool:
    """Whether the store merges now: OPTIMIZE … FINAL merges every part into one, or is refused."""
    try:
        store.command("OPTIMIZE TABLE xp.paced FINAL")
    except XpError as error:
        assert "Cancelled merging parts" in str(error)
        return False
    assert active_parts(store) == 1
    return True


def test_merges_held_while_behind_and_resumed_when_keeping_up(store: Warehouse) -> None:
    paced = PacedMerges(store, max_parts=50, check_every=1)
    paced.after_batch(backlogged=True)
    assert paced.held and paced.holds == 1
    insert_parts(store, 3)
    assert not merges_run(store)
    assert active_parts(store) == 3
    paced.after_batch(backlogged=True)  # still behind, under the bound: still held
    assert paced.held and paced.holds == 1
    paced.after_batch(backlogged=False)
    assert not paced.held
    assert merges_run(store)


@pytest.mark.parametrize("resume", ["when_idle", "stop"])
def test_an_idle_poll_or_the_end_of_a_run_resumes_merges(store: Warehouse, resume: str) -> None:
    paced = PacedMerges(store)
    paced.after_batch(backlogged=True)
    insert_parts(store, 2)
    assert not merges_run(store)
    getattr(paced, resume)()
    assert not paced.held
    assert merges_run(store)


def test_merges_resume_at_the_parts_bound_counted_every_few_batches(store: Warehouse) -> None:
    paced = PacedMerges(store, max_parts=4, check_every=3)
    paced.after_batch(backlogged=True)  # batch 1: counted (0 parts), held
    assert paced.held
    insert_parts(store, 5)
    paced.after_batch(backlogged=True)  # batches 2 and 3: not counted
    paced.after_batch(backlogged=True)
    assert paced.held and not merges_run(store)
    paced.after_batch(backlogged=True)  # batch 4: 5 parts >= 4, resumed
    assert not paced.held
    assert merges_run(store)  # one part now
    paced.after_batch(backlogged=True)  # batches 5 and 6: not counted
    paced.after_batch(backlogged=True)
    assert not paced.held
    paced.after_batch(backlogged=True)  # batch 7: counted (1 part), held again
    assert paced.held and paced.holds == 2


def test_disabled_pacing_never_holds_merges(store: Warehouse) -> None:
    paced = PacedMerges(store, enabled=False)
    paced.after_batch(backlogged=True)
    insert_parts(store, 2)
    assert not paced.held
    assert merges_run(store)


def test_stop_on_a_closed_store_does_not_raise(store: Warehouse) -> None:
    paced = PacedMerges(store)
    paced.after_batch(backlogged=True)
    assert paced.held
    store.close()
    paced.stop()
    assert not paced.held


@pytest.mark.parametrize("held_first", [False, True])
def test_a_failing_store_turns_pacing_off_without_raising(store: Warehouse, held_first: bool) -> None:
    """Pacing must never crash the worker: a store that refuses the count or the statement (here: closed
    under it) turns pacing off for the run; the worker's own next insert reports the store."""
    paced = PacedMerges(store, check_every=1)
    if held_first:
        paced.after_batch(backlogged=True)
        assert paced.held
    store.close()
    paced.after_batch(backlogged=True)
    assert not paced.enabled and not paced.held
    paced.after_batch(backlogged=True)  # off: nothing asked of the store any more
    paced.when_idle()
    paced.stop()
