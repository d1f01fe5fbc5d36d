"""The warehouse sink: transient warehouse errors are retried with the same token; nothing lost."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from pipelines.processor import BatchOutput
from pipelines.stream_report import StreamReport
from pipelines.warehouse_sink import WarehouseSink
from tests.unit.pipeline.helpers import T0, event, exposure
from xpcore.errors import TerminalError, TransientError


class FlakyWarehouse:
    """Fails the first ``failures`` inserts with a TransientError, then records every insert."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TransientError("server unreachable")
        self.inserts: list[tuple[str, int, str | None]] = []
        self.attempts = 0

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        self.inserts.append((table, data.num_rows, dedup_token))
        return int(data.num_rows)


def _output() -> BatchOutput:
    from collections import Counter

    from pipelines.processor import attributions_table
    from schemas import Exposure, MetricEvent
    from schemas.arrow import to_arrow

    return BatchOutput(
        exposures=to_arrow([exposure("x", "u")], Exposure),
        events=to_arrow([event("e", "u")], MetricEvent),
        attributed=attributions_table([]),
        dead_letters=[],
        tokens={
            t: f"{t}|x/0/0-1"
            for t in ("xp.exposures", "xp.events", "xp.attributed_events", "xp.dead_letters")
        },
        offsets={("x", 0): 2},
        exposure_ids=["x"],
        event_ids=["e"],
        consumed=2,
        duplicates=0,
        duplicates_by_topic={},
        reasons=Counter(),
        now=T0,
    )


def _sink(warehouse: Any, report: StreamReport, slept: list[float], **options: Any) -> WarehouseSink:
    return WarehouseSink(warehouse, report=report, stopping=lambda: False, sleep=slept.append, **options)


def test_transient_errors_are_retried_with_the_same_token_until_the_insert_succeeds() -> None:
    warehouse: Any = FlakyWarehouse(failures=5)
    report = StreamReport()
    slept: list[float] = []
    _sink(warehouse, report, slept, retry_max_seconds=2).load(_output())
    assert warehouse.inserts == [
        ("xp.exposures", 1, "xp.exposures|x/0/0-1"),
        ("xp.events", 1, "xp.events|x/0/0-1"),
    ]
    assert report.insert_retries == 5
    assert slept == [0.5, 1.0, 2.0, 2.0, 2.0]  # back-off, capped


def test_terminal_errors_are_not_retried() -> None:
    warehouse: Any = FlakyWarehouse(failures=1, error=TerminalError("ClickHouse error 60 UNKNOWN_TABLE"))
    with pytest.raises(TerminalError):
        _sink(warehouse, StreamReport(), [], retry_max_seconds=30).load(_output())
    assert warehouse.attempts == 1


def test_a_stop_ends_the_retries_with_a_transient_error() -> None:
    warehouse: Any = FlakyWarehouse(failures=100)
    stops = iter([False, False, True])
    sink = WarehouseSink(
        warehouse, report=StreamReport(), stopping=lambda: next(stops), retry_max_seconds=1, sleep=[].append
    )
    with pytest.raises(TransientError, match="stopped while the warehouse was failing"):
        sink.load(_output())
    assert warehouse.attempts == 3 and warehouse.inserts == []


@pytest.mark.parametrize("overlap", [False, True])
def test_a_submitted_batch_is_returned_once_loaded_and_its_stages_counted(overlap: bool) -> None:
    warehouse: Any = FlakyWarehouse(failures=0)
    report = StreamReport()
    sink = _sink(warehouse, report, [], retry_max_seconds=1, overlap=overlap)
    try:
        assert sink.finish() is None  # nothing in flight
        output = _output()
        sink.submit(output)
        assert sink.finish() is output
        assert [table for table, _, _ in warehouse.inserts] == ["xp.exposures", "xp.events"]
        assert set(report.stage_seconds) == {"load", "load_wait"}
        assert sink.finish() is None
    finally:
        sink.close()
