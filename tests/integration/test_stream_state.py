"""Worker state rebuilt from chDB: a crash between inserts, then a restart, gives exact tables.

Deterministic version of the kill -9 test: the "crash" happens at a chosen point (after the events
insert, before the attribution insert and the offset commit); a new processor restores its state from
the warehouse and the same Kafka records are processed again, in different batch boundaries.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipelines.processor import StreamProcessor, attributions_table
from pipelines.state import restore_state
from schemas import DeadLetter
from schemas.arrow import to_arrow
from tests.unit.pipeline.helpers import (
    T0,
    event,
    exposure,
    make_processor,
    raw,
    raw_event,
    raw_exposure,
)
from xpcore.config import StreamSettings
from xpcore.warehouse.base import Warehouse

pytestmark = pytest.mark.integration


def _processor() -> StreamProcessor:
    return make_processor(max_lateness=timedelta(days=3650))


def _ids(warehouse: Warehouse, sql: str) -> list[tuple[object, ...]]:
    return sorted(tuple(row.values()) for row in warehouse.query_arrow(sql).to_pylist())


def test_crash_between_inserts_then_restart_is_exact(warehouse: Warehouse) -> None:
    now = T0 + timedelta(minutes=1)  # processing time; the records' Kafka timestamps are T0
    t0 = T0 - timedelta(minutes=30)
    raws = [
        raw_exposure(exposure("x1", "u1", variation=1, at=t0), 0),
        raw_exposure(exposure("x2", "u2", variation=0, at=t0), 1),
        raw_event(event("e1", "u1", value=5.0, at=t0 + timedelta(minutes=1)), 0),
        raw_event(event("e2", "u2", value=7.0, at=t0 + timedelta(minutes=2)), 1),
        raw(b"not json", 2),
        raw_event(event("e3", "u1", value=1.0, at=t0 + timedelta(minutes=3)), 2),
    ]
    first = _processor()
    batch = first.process(raws[:5], now)
    # "Crash": exposures, events and dead letters are in, the attribution insert and the commit never happen.
    warehouse.insert_arrow("xp.exposures", batch.exposures, dedup_token=batch.tokens["xp.exposures"])
    warehouse.insert_arrow("xp.events", batch.events, dedup_token=batch.tokens["xp.events"])
    dead = to_arrow(batch.dead_letters, DeadLetter)
    warehouse.insert_arrow("xp.dead_letters", dead, dedup_token=batch.tokens["xp.dead_letters"])

    restarted = _processor()
    restored = restore_state(restarted, warehouse, StreamSettings(stream_hold_seconds=300), now)
    assert restored == {"dedup_ids": 5, "unit_exposures": 2, "held_events": 2}
    pending = restarted.attribution.attribute_held()
    assert sorted((a.event_id, a.experiment_key, a.variation_id) for a in pending) == [
        ("e1", "exp-a", 1),
        ("e2", "exp-a", 0),
    ]
    warehouse.insert_arrow("xp.attributed_events", attributions_table(pending))
    # Kafka re-delivers everything from the last commit, in other batch boundaries.
    for part in (raws[:3], raws[3:]):
        output = restarted.process(part, now)
        for table, data in (
            ("xp.exposures", output.exposures),
            ("xp.events", output.events),
            ("xp.attributed_events", output.attributed),
            ("xp.dead_letters", to_arrow(output.dead_letters, DeadLetter)),
        ):
            warehouse.insert_arrow(table, data, dedup_token=output.tokens[table])
        restarted.remember_ids(output)

    assert _ids(warehouse, "SELECT exposure_id FROM xp.exposures") == [("x1",), ("x2",)]
    assert _ids(warehouse, "SELECT event_id FROM xp.events") == [("e1",), ("e2",), ("e3",)]
    assert _ids(warehouse, "SELECT event_id, experiment_key, variation_id FROM xp.attributed_events") == [
        ("e1", "exp-a", 1),
        ("e2", "exp-a", 0),
        ("e3", "exp-a", 1),
    ]
    assert _ids(warehouse, "SELECT reason, source_offset FROM xp.dead_letters") == [("invalid_json", 2)]
    stats = warehouse.query_arrow(
        "SELECT experiment_key, variation_id, event_name, units, sum_value, sum_value_sq, sum_count "
        "FROM (" + _metric_stats() + ")"
    ).to_pylist()
    assert stats == [
        {"experiment_key": "exp-a", "variation_id": 0, "event_name": "purchase", "units": 1,
         "sum_value": 7.0, "sum_value_sq": 49.0, "sum_count": 1.0},
        {"experiment_key": "exp-a", "variation_id": 1, "event_name": "purchase", "units": 1,
         "sum_value": 6.0, "sum_value_sq": 36.0, "sum_count": 2.0},
    ]  # fmt: skip


def _metric_stats() -> str:
    from xpcore.warehouse import load_query

    return load_query("realtime_metric_stats")


def test_the_flink_replay_guard_finds_the_job_rows_a_killed_loader_inserted(warehouse: Warehouse) -> None:
    """Trust mode's restart look-up (decision 0105) against the real table: a (event id, experiment)
    pair inserted before the restart is found, the same event under another experiment is not."""
    import json

    from pipelines.flink.attribution_load import ReplayGuard, job_rows_table

    known = {"exp-a": frozenset({0, 1}), "exp-b": frozenset({0, 1})}
    first_us = 1_714_564_800_000_000  # 2024-05-01 12:00 UTC

    def rows(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes, str]]:
        made = [
            {
                "event_id": event_id,
                "unit_id": "u1",
                "experiment_key": experiment,
                "variation_id": 1,
                "event_name": "purchase",
                "value": 2.5,
                "occurred_us": first_us + 61_000_000,
                "first_us": first_us,
            }
            for event_id, experiment in pairs
        ]
        return [(b"u1", json.dumps(row).encode(), "xp.flink.attributions/0@0") for row in made]

    loaded_before = job_rows_table(rows(("e1", "exp-a"), ("e2", "exp-a")), known)
    warehouse.insert_arrow("xp.attributed_events", loaded_before, dedup_token="before-the-kill")
    again = job_rows_table(rows(("e1", "exp-a"), ("e2", "exp-b"), ("e3", "exp-a")), known)
    guard = ReplayGuard(warehouse, {0: 3})
    assert guard.loaded(again) == [True, False, False]
