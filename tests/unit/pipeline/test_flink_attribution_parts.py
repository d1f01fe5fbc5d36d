"""The Flink job's JVM attribution, its pure parts: the SQL around the Java function (windows, quoting,
the records it reads) and the loader's check of the job's rows against the kernel's.

No JVM here: tests/integration/test_flink_attribution.py runs the function itself against the kernel.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from pipelines.flink.attribution_check import AttributionCheck, job_rows, kernel_rows
from pipelines.flink.attribution_sql import (
    AttributionParams,
    attribution_columns,
    attribution_insert,
    literal_spec,
    windows_spec,
)
from pipelines.processor import ATTRIBUTED_EVENTS_SCHEMA
from tests.unit.pipeline.test_flink_runner_parts import HOSTILE, _outside_literals


def test_windows_are_micros_none_is_no_end_and_items_are_sorted() -> None:
    spec = windows_spec({("b", "buy"): timedelta(seconds=2), ("a", "click"): None})
    assert spec == "a\u0001click\u0001-1\u0002b\u0001buy\u00012000000"
    assert windows_spec({}) == ""


def test_the_insert_passes_the_kernel_s_settings_and_keeps_hostile_keys_in_a_literal() -> None:
    params = AttributionParams(
        hold=timedelta(seconds=300), default_window=timedelta(days=14), windows={(HOSTILE, "buy"): None}
    )
    insert = attribution_insert("attributions_out", params)
    assert "hold_ms => CAST(300000 AS BIGINT)" in insert
    assert "default_window_us => CAST(1209600000000 AS BIGINT)" in insert
    assert "PARTITION BY unit_id" in insert and "uid => 'xp-attribution'" in insert
    assert "DROP TABLE" not in _outside_literals(insert)
    assert literal_spec("x'y\u0001n\u00015") == "U&'x''y\\0001n\\00015'"
    with pytest.raises(ValueError, match="control character"):
        literal_spec("a\nb\u0001n\u00011")


def test_only_the_fields_attribution_needs_are_read() -> None:
    exposure_items, exposure_names = attribution_columns("exposed_at")
    assert exposure_names == "a_unit, a_experiment, a_variation, a_at"
    assert "TRY_CAST" in exposure_items  # never fails on a record that is not ok
    _items, event_names = attribution_columns("occurred_at")
    assert event_names == "a_unit, a_event_name, a_metric, a_at"


def _kernel_table(rows: list[tuple[str, str, str, int, str, float | None, datetime, datetime]]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(ATTRIBUTED_EVENTS_SCHEMA.names, row, strict=True)) for row in rows],
        schema=ATTRIBUTED_EVENTS_SCHEMA,
    )


T0 = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def _job(event_id: str, experiment: str, variation: int, value: float | None, first: datetime) -> bytes:
    occurred_us = int((T1 - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    first_us = int((first - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    row = {
        "event_id": event_id,
        "unit_id": "u1",
        "experiment_key": experiment,
        "variation_id": variation,
        "event_name": "buy",
        "value": value,
        "occurred_us": occurred_us,
        "first_us": first_us,
    }
    return json.dumps(row).encode()


def test_the_check_matches_rows_whichever_side_comes_first_and_counts_the_rest() -> None:
    counts: Counter[str] = Counter()
    check = AttributionCheck(counts)
    check.add_job(job_rows([_job("e1", "x", 1, 2.5, T0), _job("e2", "x", 1, None, T0)]))
    kernel = _kernel_table(
        [
            ("e1", "u1", "x", 1, "buy", 2.5, T1, T0),  # agrees
            ("e2", "u1", "x", 0, "buy", None, T1, T0),  # another variation: disagrees
            ("e3", "u1", "x", 1, "buy", 1.0, T1, T0),  # the job's row comes later
        ]
    )
    check.add_kernel(kernel_rows(kernel))
    assert counts == Counter({"agree": 1, "disagree": 1})
    check.add_job(job_rows([_job("e3", "x", 1, 1.0, T0), _job("e4", "y", 0, 1.0, T0)]))
    check.add_kernel(kernel_rows(_kernel_table([("e5", "u1", "x", 1, "buy", 1.0, T1, T1)])))
    check.finish()
    assert counts == Counter({"agree": 2, "disagree": 1, "job_only": 1, "kernel_only": 1})


def test_a_first_exposure_one_microsecond_apart_disagrees() -> None:
    counts: Counter[str] = Counter()
    check = AttributionCheck(counts)
    check.add_kernel(kernel_rows(_kernel_table([("e1", "u1", "x", 1, "buy", 2.5, T1, T0)])))
    check.add_job(job_rows([_job("e1", "x", 1, 2.5, T0 + timedelta(microseconds=1))]))
    assert counts == Counter({"disagree": 1})


def test_a_malformed_job_row_is_refused() -> None:
    with pytest.raises(ValueError):
        job_rows([b"not json"])
    with pytest.raises(KeyError):
        job_rows([b'{"event_id": "e"}'])


def test_unmatched_rows_are_bounded_oldest_counted_first() -> None:
    counts: Counter[str] = Counter()
    check = AttributionCheck(counts, max_pending=3)
    row = ("u", 1, "purchase", None, 10, 5)
    check.add_kernel([((f"e{i}", "x"), row) for i in range(5)])  # no job rows ever come for these
    assert counts == Counter(kernel_only=2) and list(check.kernel) == [("e2", "x"), ("e3", "x"), ("e4", "x")]
    check.add_job([(("e4", "x"), row), (("j1", "x"), row)])
    assert counts["agree"] == 1 and list(check.job) == [("j1", "x")]
    check.finish()
    assert counts == Counter(kernel_only=4, agree=1, job_only=1)
