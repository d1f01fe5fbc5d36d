"""When the start-up view repair waits for inserts in flight (pipelines.state.repair_horizon)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from pipelines.state import repair_horizon

NOW = datetime(2026, 12, 5, 7, 30, tzinfo=UTC)


class _Store:
    def __init__(self, newest: datetime | None) -> None:
        self.newest = newest
        self.asked: list[dict[str, Any]] = []

    def query_arrow(self, sql: str, parameters: dict[str, Any]) -> pa.Table:
        self.asked.append(parameters)
        return pa.table({"newest": pa.array([self.newest], pa.timestamp("ms", tz="UTC"))})


def _horizon(store: _Store, *, exclusive: bool) -> tuple[datetime | None, list[float]]:
    slept: list[float] = []
    until = repair_horizon(
        store, exclusive=exclusive, settle_seconds=5, clock=lambda: NOW, sleep=slept.append
    )
    return until, slept


def test_the_only_writer_repairs_every_row_at_once() -> None:
    store = _Store(NOW)
    assert _horizon(store, exclusive=True) == (None, []) and store.asked == []


def test_with_other_writers_active_it_waits_then_trusts_rows_loaded_before_it_started() -> None:
    store = _Store(NOW)
    assert _horizon(store, exclusive=False) == (NOW, [5])
    assert store.asked[0]["since"] < NOW  # it looked for recent writes


def test_an_idle_shared_store_needs_no_wait() -> None:
    assert _horizon(_Store(None), exclusive=False) == (NOW, [])
