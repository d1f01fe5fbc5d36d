"""State read back from the warehouse column-wise: dedup ids cut into runs (one kind, one load time),
experiment sets and times, each against the row-by-row reading it replaces."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import groupby, pairwise
from operator import itemgetter

import pyarrow as pa
import pytest

from pipelines.state import _utc, experiment_sets, id_runs, utc_datetimes

KINDS = ("dead_letter", "event", "exposure")


def _table(rows: list[tuple[str, str, datetime]]) -> pa.Table:
    return pa.table(
        {
            "kind": pa.array([kind for kind, _, _ in rows], pa.string()),
            "id": pa.array([record_id for _, record_id, _ in rows], pa.string()),
            "ingested_at": pa.array([at for _, _, at in rows], pa.timestamp("ms", "UTC")),
        }
    )


def _reference(rows: list[tuple[str, str, datetime]]) -> list[tuple[str, datetime, list[str]]]:
    return [
        (kind, at, [record_id for _, record_id, _ in group])
        for (kind, at), group in groupby(rows, key=lambda row: (row[0], row[2]))
    ]


@pytest.mark.parametrize("seed", range(20))
def test_runs_are_the_groups_of_one_kind_and_one_time_in_order(seed: int) -> None:
    rng = random.Random(seed)
    base = datetime(2026, 12, 7, 12, tzinfo=UTC)
    times = sorted({base + timedelta(milliseconds=rng.randrange(10_000)) for _ in range(rng.randrange(1, 8))})
    rows = [(rng.choice(KINDS), f"id-{n}", rng.choice(times)) for n in range(rng.randrange(1, 300))]
    if seed % 2:  # as the query orders them (time, then kind) or interleaved: runs follow the table's order
        rows.sort(key=itemgetter(2, 0))
    got = list(id_runs(_table(rows)))
    assert got == _reference(rows)
    assert [record_id for _, _, ids in got for record_id in ids] == [row[1] for row in rows]
    assert all(at.tzinfo is UTC for _, at, _ in got)


def test_a_batch_of_several_kinds_ordered_by_the_query_is_one_run_per_kind() -> None:
    at = datetime(2026, 12, 7, 12, 0, 0, 123000, tzinfo=UTC)
    rows = sorted(
        [("event", f"e{n}", at) for n in range(1000)] + [("exposure", f"x{n}", at) for n in range(100)],
        key=itemgetter(2, 0),
    )
    got = list(id_runs(_table(rows)))
    assert [(kind, when, len(ids)) for kind, when, ids in got] == [("event", at, 1000), ("exposure", at, 100)]


def test_no_rows_no_runs() -> None:
    assert list(id_runs(_table([]))) == []


@pytest.mark.parametrize("seed", range(20))
def test_experiment_sets_are_the_sets_of_each_row(seed: int) -> None:
    rng = random.Random(seed)
    keys = ["exp-a", "exp-b", "checkout", "x" * 40] + (["with\x1fseparator"] if seed % 4 == 3 else [])
    rows = [
        None if rng.random() < 0.1 else rng.sample(keys, rng.randrange(0, len(keys) + 1))
        for _ in range(rng.randrange(0, 200))
    ]
    pieces = rng.randrange(1, 4)  # chunked, as a query's result may be
    cut = sorted(rng.sample(range(len(rows) + 1), pieces - 1)) if len(rows) + 1 >= pieces else []
    bounds = [0, *cut, len(rows)]
    column = pa.chunked_array(
        [pa.array(rows[a:b], pa.list_(pa.string())) for a, b in pairwise(bounds)],
        pa.list_(pa.string()),
    )
    got = experiment_sets(column)
    assert [set(found) for found in got] == [set(row or ()) for row in rows]
    strict = pa.list_(pa.field("item", pa.string(), nullable=False))  # as chDB types the column
    assert experiment_sets(column.cast(strict)) == got
    assert all(len(found) == len(set(found)) for found in got)


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_utc_datetimes_equal_each_value_read_and_normalised(unit: str) -> None:
    rng = random.Random(3)
    step = {"s": 1_000_000, "ms": 1000, "us": 1}[unit]
    base = datetime(2026, 12, 7, tzinfo=UTC)
    values = [
        base + timedelta(microseconds=rng.randrange(-(10**15), 10**15) // step * step) for _ in range(500)
    ]
    values += [datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)]
    column = pa.chunked_array([pa.array(values, pa.timestamp(unit, "UTC"))])
    got = utc_datetimes(column)
    assert got == [_utc(value) for value in column.to_pylist()]
    assert all(value.tzinfo is UTC for value in got)
