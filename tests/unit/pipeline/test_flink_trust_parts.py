"""Trust mode's parts (decision 0105): the job's rows checked and made a table; the replay look-up; the
kernel not attributing (nor holding) the events the job attributes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from pipelines.flink.attribution_load import ReplayGuard, _columnar, _walked, job_rows_table
from tests.unit.pipeline.helpers import event, exposure, make_processor, minutes, raw_event, raw_exposure

KNOWN = {"exp-a": frozenset({0, 1})}
T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T_US = round(T.timestamp() * 1_000_000)


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "event_id": "e1",
        "unit_id": "u1",
        "experiment_key": "exp-a",
        "variation_id": 1,
        "event_name": "purchase",
        "value": 2.5,
        "occurred_us": T_US + 61_000_000,
        "first_us": T_US,
    }
    return {**base, **changes}


def record(value: dict[str, Any] | bytes, key: bytes = b"u1") -> tuple[bytes, bytes, str]:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return (key, raw, "xp.flink.attributions/0@7")


def test_a_job_row_becomes_a_row_of_the_table() -> None:
    table = job_rows_table([record(row()), record(row(event_id="e2", value=None))], KNOWN)
    assert table.column_names[:3] == ["event_id", "unit_id", "experiment_key"]
    got = table.to_pylist()
    assert got[0]["variation_id"] == 1 and got[0]["value"] == 2.5 and got[1]["value"] is None
    assert got[0]["occurred_at"] == T + timedelta(seconds=61)
    assert got[0]["first_exposed_at"] == T
    records = [record(row(event_id=f"e{i}", value=i / 3 if i % 4 else None)) for i in range(50)]
    columnar = _columnar(records, KNOWN)  # the columnar path took them, and agrees with the walk
    assert columnar is not None and columnar.equals(_walked(records, KNOWN))
    assert _columnar(records, None) is not None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (record(b"{not json"), "not JSON"),
        (record(b"[1, 2]"), "exactly the fields"),
        (record({**row(), "extra": 1}), "exactly the fields"),
        (record({k: v for k, v in row().items() if k != "value"}), "exactly the fields"),
        (record(row(event_id="")), "event_id"),
        (record(row(unit_id=7)), "unit_id"),
        (record(row(variation_id=70_000)), "variation_id"),
        (record(row(variation_id=True)), "variation_id"),
        (record(row(value="1")), "value"),
        (
            record(
                b'{"event_id": "e1", "unit_id": "u1", "experiment_key": "exp-a", "variation_id": 1, '
                b'"event_name": "purchase", "value": NaN, "occurred_us": 0, "first_us": 0}'
            ),
            "value",
        ),
        (record(row(occurred_us=T_US + 1)), "whole milliseconds"),
        (record(row(first_us=-1000)), "whole milliseconds"),
        (record(row(occurred_us=T_US - 1000)), "before first_us"),
        (record(row(event_id="x" * 1025)), "event_id"),
        (record(row(), key=b"u2"), "Kafka key"),  # a foreign key: not the row's unit
        (record(row(experiment_key="exp-z")), "not in the registry"),
        (record(row(variation_id=5)), "not in the registry"),
    ],
)
def test_a_hostile_row_is_refused_with_where_and_why(bad: tuple[bytes, bytes, str], message: str) -> None:
    assert _columnar([record(row()), bad], KNOWN) is None  # the columnar path refuses it too
    with pytest.raises(ValueError, match=message) as refused:
        job_rows_table([record(row()), bad], KNOWN)
    assert "xp.flink.attributions/0@7" in str(refused.value)


def test_a_row_the_columnar_path_cannot_read_is_decided_by_the_walk() -> None:
    records = [record(row()), record(json.dumps(row(event_id="e2"), indent=1).encode())]  # over lines
    assert _columnar(records, KNOWN) is None
    assert job_rows_table(records, KNOWN).column("event_id").to_pylist() == ["e1", "e2"]


def test_without_a_registry_any_experiment_is_taken() -> None:
    assert job_rows_table([record(row(experiment_key="exp-z"))], None).num_rows == 1


class Loaded:
    """The warehouse's answer to the look-up: the (event_id, experiment_key) rows it holds."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows, self.asked = rows, []

    def query_arrow(self, sql: str, parameters: dict[str, Any]) -> pa.Table:
        self.asked.append(sorted(parameters["ids"]))
        assert "FROM xp.attributed_events" in sql and "{ids:Array(String)}" in sql
        hits = [r for r in self.rows if r[0] in parameters["ids"]]
        return pa.table({"event_id": [r[0] for r in hits], "experiment_key": [r[1] for r in hits]})


def test_the_replay_guard_skips_only_pairs_the_warehouse_holds_below_the_start_watermark() -> None:
    warehouse = Loaded([("e1", "exp-a"), ("e2", "exp-b")])
    guard = ReplayGuard(warehouse, {0: 10, 1: 0})
    assert guard.replaying(0, 9) and not guard.replaying(0, 10) and not guard.replaying(1, 0)
    assert not guard.replaying(2, 0)  # a partition unknown at the start: never read before
    rows = [row(), row(event_id="e2"), row(event_id="e3")]  # e2 loaded for exp-b, not exp-a
    table = job_rows_table([record(r) for r in rows], KNOWN)
    assert guard.loaded(table) == [True, False, False]
    assert warehouse.asked == [["e1", "e2", "e3"]]


def test_the_kernel_neither_attributes_nor_holds_the_events_attributed_elsewhere() -> None:
    everything, trusting = make_processor(timedelta(days=1)), make_processor(timedelta(days=1))
    raws = [
        raw_exposure(exposure("x1", "u1", at=minutes(0)), 1),
        raw_event(event("e1", "u1", at=minutes(1)), 2),  # the job's (verdict ok)
        raw_event(event("e2", "u1", at=minutes(2)), 3),  # undecided by the job: the kernel's
        raw_event(event("e3", "u2", at=minutes(2)), 4),  # undecided, no exposure yet: held
        raw_event(event("e4", "u2", at=minutes(3)), 5),  # the job's: not held by the kernel
    ]
    now = minutes(4)
    full = everything.process(raws, now)
    part = trusting.process(raws, now, {("xp.events", 0, 2), ("xp.events", 0, 5)})
    assert full.attributed.column("event_id").to_pylist() == ["e1", "e2"]
    assert part.attributed.column("event_id").to_pylist() == ["e2"]
    assert part.attributed.to_pylist()[0] == full.attributed.to_pylist()[1]  # the same row, every column
    assert part.events.num_rows == full.events.num_rows == 4  # every event still loaded
    assert everything.attribution.held_count == 4 and trusting.attribution.held_count == 2
    # A late exposure of u2 attributes the held undecided event only (the job attributes e4).
    late = [raw_exposure(exposure("x2", "u2", at=minutes(0)), 6)]
    assert everything.process(late, now).attributed.column("event_id").to_pylist() == ["e3", "e4"]
    assert trusting.process(late, now).attributed.column("event_id").to_pylist() == ["e3"]
