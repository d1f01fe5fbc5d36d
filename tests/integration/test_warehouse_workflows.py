"""Warehouse workflows no other chDB-only test drives: the stream sink and state, dead-letter replay
selection, registry history, the logical backup copy, job runs, the sample data with quality rows.

They run on whichever adapter the ``warehouse`` fixture gives: chDB here, and the ClickHouse-server path
when test_server_sql_chdb.py reruns this file with ``XP_TEST_WAREHOUSE=server-on-chdb`` (decision 0095).
No Kafka: batches come from the stream kernel fed with plain records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from pipelines.processor import StreamProcessor
from pipelines.registry_history import store_registry_history
from pipelines.replay import _mark_replayed, select_replayable
from pipelines.state import refresh_recent_ids, repair_horizon, restore_state
from pipelines.stream_report import StreamReport
from pipelines.warehouse_sink import WarehouseSink
from pipelines.worker_setup import restore_from_warehouse
from schemas import RegistryRecord
from schemas.records import RegistryChange
from tests.unit.pipeline.helpers import EXPOSURES_TOPIC, T0, event, exposure, make_processor, raw, raw_event
from tests.unit.pipeline.helpers import raw_exposure as raw_exp
from xpcore.config import StreamSettings
from xpcore.warehouse import Warehouse, load_query

pytestmark = pytest.mark.integration

NOW = T0 + timedelta(minutes=1)
SETTINGS = StreamSettings(stream_hold_seconds=300, stream_dedup_retention_seconds=10 * 365 * 86400)


def _processor() -> StreamProcessor:
    return make_processor(max_lateness=timedelta(days=3650))


def _loaded_batch(warehouse: Warehouse) -> WarehouseSink:
    t0 = T0 - timedelta(minutes=30)
    records = [
        raw_exp(exposure("x1", "u1", variation=1, at=t0), 0),
        raw_exp(exposure("x2", "u2", variation=0, at=t0), 1),
        raw_event(event("e1", "u1", value=5.0, at=t0 + timedelta(minutes=1)), 0),
        raw(b"\xfe not json", 2),
    ]
    output = _processor().process(records, NOW)
    sink = WarehouseSink(warehouse, report=StreamReport(), stopping=lambda: False, retry_max_seconds=1.0)
    sink.load(output)
    sink.load(output)  # a replay after a crash: same records, same tokens
    return sink


def _count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query_arrow(f"SELECT count() AS n FROM {table}")["n"][0].as_py())  # nosec B608


def test_the_sink_loads_a_batch_once_and_a_restart_restores_from_it(warehouse: Warehouse) -> None:
    _loaded_batch(warehouse)
    counts = {t: _count(warehouse, f"xp.{t}") for t in ("exposures", "events", "dead_letters")}
    assert counts == {"exposures": 2, "events": 1, "dead_letters": 1}
    assert _count(warehouse, "xp.attributed_events") == 1

    restarted = _processor()
    horizon = repair_horizon(warehouse, exclusive=False, settle_seconds=0)
    assert horizon is not None
    restored = restore_state(restarted, warehouse, SETTINGS, NOW, repair_until=horizon)
    assert restored["dedup_ids"] == 4 and restored["unit_exposures"] == 2
    assert refresh_recent_ids(restarted, warehouse, SETTINGS, NOW) == 0  # every id is known already

    exposures = warehouse.query_arrow(load_query("realtime_exposures"), {"since": T0 - timedelta(days=1)})
    assert exposures.num_rows > 0
    stats = warehouse.query_arrow(load_query("realtime_metric_stats")).to_pylist()
    assert [(r["variation_id"], r["units"]) for r in stats] == [(1, 1)]


def test_a_resent_batch_is_not_counted_twice_in_the_realtime_sums(warehouse: Warehouse) -> None:
    _loaded_batch(warehouse)  # loads the batch twice with the same tokens
    stats = warehouse.query_arrow(load_query("realtime_metric_stats")).to_pylist()
    assert [(r["variation_id"], r["sum_value"], r["sum_count"]) for r in stats] == [(1, 5.0, 1.0)]


def test_distinct_batches_whose_view_rows_are_identical_are_all_counted(warehouse: Warehouse) -> None:
    """The view targets' deduplication window (migration 0015) drops a re-sent block only: two batches of
    different events whose view rows are identical (same unit, value, minute) both count, with tokens
    and without."""
    t0 = T0 - timedelta(minutes=30)
    exposed = _processor().process([raw_exp(exposure("x1", "u1", variation=1, at=t0), 0)], NOW)
    WarehouseSink(warehouse, report=StreamReport(), stopping=lambda: False, retry_max_seconds=1.0).load(
        exposed
    )
    at = t0 + timedelta(minutes=1)
    for offset, event_id in enumerate(("e1", "e2", "e3", "e4"), start=1):
        processor = _processor()
        processor.process([raw_exp(exposure("x1", "u1", variation=1, at=t0), 0)], NOW)
        output = processor.process([raw_event(event(event_id, "u1", value=5.0, at=at), offset)], NOW)
        if offset <= 2:  # the sink's inserts, with their tokens
            WarehouseSink(
                warehouse, report=StreamReport(), stopping=lambda: False, retry_max_seconds=1.0
            ).load(output)
        else:  # no token: the block hash decides
            warehouse.insert_arrow("xp.events", output.events)
            warehouse.insert_arrow("xp.attributed_events", output.attributed)
    stats = warehouse.query_arrow(load_query("realtime_metric_stats")).to_pylist()
    assert [(r["variation_id"], r["sum_value"], r["sum_count"]) for r in stats] == [(1, 20.0, 4.0)]
    ingested = warehouse.query_arrow(
        "SELECT toString(kind) AS kind, toUInt64(sum(records)) AS n"
        " FROM xp.ingest_counts_minute GROUP BY kind"
    ).to_pylist()
    assert {r["kind"]: r["n"] for r in ingested}.get("events") == 4


def test_a_restart_through_the_worker_set_up_attributes_what_a_crash_left_out(warehouse: Warehouse) -> None:
    now = datetime.now(UTC)  # the set-up restores the events held within the hold window before now
    records = [
        raw_exp(exposure("x1", "u1", variation=1, at=now - timedelta(minutes=2)), 0),
        raw_event(event("e1", "u1", value=5.0, at=now - timedelta(minutes=1)), 0),
    ]
    stamp = round(now.timestamp() * 1000)  # received now (the helpers stamp records at T0)
    output = _processor().process([record._replace(timestamp_ms=stamp) for record in records], now)
    # "Crash" after the events insert: the attribution insert never happened.
    warehouse.insert_arrow("xp.exposures", output.exposures, dedup_token=output.tokens["xp.exposures"])
    warehouse.insert_arrow("xp.events", output.events, dedup_token=output.tokens["xp.events"])
    assert _count(warehouse, "xp.attributed_events") == 0
    parts = SimpleNamespace(follower=None, warehouse=warehouse, settings=SETTINGS, processor=_processor())
    report = StreamReport()
    restore_from_warehouse(parts, report)  # type: ignore[arg-type]
    assert (report.restored["held_events"], report.attributed) == (1, 1)
    rows = warehouse.query_arrow("SELECT event_id, variation_id FROM xp.attributed_events").to_pylist()
    assert rows == [{"event_id": "e1", "variation_id": 1}]


def test_replay_selects_dead_letters_with_their_bytes_and_marks_them(warehouse: Warehouse) -> None:
    _loaded_batch(warehouse)
    since = T0 - timedelta(days=1)
    stored = warehouse.query_arrow("SELECT reason FROM xp.dead_letters")["reason"].to_pylist()
    rows = select_replayable(warehouse, [EXPOSURES_TOPIC], reasons=stored, since=since)
    assert [(r["reason"], r["original"], r["truncated"]) for r in rows] == [
        (stored[0], b"\xfe not json", False)
    ]
    assert select_replayable(warehouse, [EXPOSURES_TOPIC], reasons=["no_such_reason"], since=since) == []
    _mark_replayed(warehouse, rows, "replay-1")
    assert select_replayable(warehouse, [EXPOSURES_TOPIC], reasons=[], since=since) == []
    again = select_replayable(warehouse, [EXPOSURES_TOPIC], reasons=[], since=since, again=True)
    assert [r["dead_letter_id"] for r in again] == [rows[0]["dead_letter_id"]]


def test_registry_history_stores_each_change_once(warehouse: Warehouse) -> None:
    records = [
        RegistryRecord(
            record_id=f"r{i}",
            kind="experiment",  # type: ignore[arg-type]
            key=f"experiment/exp-{i}",
            change=RegistryChange.DELETED,
            changed_by="tests",
            changed_at=T0 + timedelta(minutes=i),
        )
        for i in range(3)
    ]
    assert store_registry_history(warehouse, records[:2]) == 2
    assert store_registry_history(warehouse, records) == 1
    assert _count(warehouse, "xp.registry") == 3


def test_the_backup_copy_round_trips_the_tables(warehouse: Warehouse, tmp_path: Path) -> None:
    from xpstream.backup.warehouse_copy import (
        export_tables,
        import_tables,
        table_layout,
        tables_with_rows,
        truncate_tables,
    )

    _loaded_batch(warehouse)
    tables, _ = table_layout(warehouse)
    copied = ["dead_letters", "events", "exposures"]
    assert set(copied) <= set(tables)
    before = tables_with_rows(warehouse, copied)
    assert before == {"dead_letters": 1, "events": 1, "exposures": 2}
    exported = export_tables(warehouse, copied, tmp_path)
    truncate_tables(warehouse, copied)
    assert tables_with_rows(warehouse, copied) == {}
    imported = import_tables(warehouse, {f"xp.{name}": tmp_path / f"{name}.arrow" for name in copied})
    assert imported == exported
    assert tables_with_rows(warehouse, copied) == before
    originals = warehouse.query_arrow("SELECT original FROM xp.dead_letters")["original"]
    assert originals.cast(pa.binary()).to_pylist() == [b"\xfe not json"]


def test_a_job_run_is_stored(warehouse: Warehouse) -> None:
    from xpstream.scheduler.store import JobRun, store_job_run

    at = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    run = JobRun("run-1", "etl", at, at, at + timedelta(seconds=3), "ok")
    store_job_run(warehouse, run)
    rows = warehouse.query_arrow("SELECT job, outcome FROM xp.job_runs").to_pylist()
    assert rows == [{"job": "etl", "outcome": "ok"}]


def test_sample_data_with_quality_rows_and_the_registry_copy(warehouse: Warehouse, tmp_path: Path) -> None:
    from dashboards.queries import QueryRunner
    from dashboards.sample_data import seed_sample_data
    from quality.registry_source import registry_from_table
    from quality.run import table_outcomes
    from quality.settings import QualitySettings
    from quality.window import Window

    data = seed_sample_data(warehouse, units=300, minutes=10, quality=True)
    assert data.quality_rows > 0
    snapshot = registry_from_table(warehouse)
    experiment = sorted(data.units)[0]
    assert experiment in snapshot.experiments
    rows = QueryRunner(warehouse).run("health_units_by_variation", {"experiment": experiment})
    assert sum(row["units"] for row in rows) == data.units[experiment]

    outcomes = table_outcomes(
        warehouse,
        QualitySettings(home=tmp_path / "home", clickhouse_url=None),
        Window(data.now - timedelta(hours=2), data.now + timedelta(minutes=1)),
    )
    dead = [o for o in outcomes if "dead" in o.check]
    assert dead and data.dead_letters > 0
    assert any("invalid" in str(o) for o in dead)  # the top reasons are named
