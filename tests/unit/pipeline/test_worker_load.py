"""The worker's load step: transient warehouse errors are retried with the same token; nothing lost."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from pipelines import worker
from pipelines.processor import BatchOutput
from pipelines.worker import StreamReport, _load, _Stop
from tests.unit.pipeline.helpers import T0, event, exposure
from xpcore.config import StreamSettings
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


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(worker.time, "sleep", slept.append)
    return slept


def test_transient_errors_are_retried_with_the_same_token_until_the_insert_succeeds(
    _no_sleep: list[float],
) -> None:
    warehouse: Any = FlakyWarehouse(failures=5)
    report = StreamReport()
    _load(warehouse, _output(), StreamSettings(stream_insert_retry_max_seconds=2), report, _Stop())
    assert warehouse.inserts == [
        ("xp.exposures", 1, "xp.exposures|x/0/0-1"),
        ("xp.events", 1, "xp.events|x/0/0-1"),
    ]
    assert report.insert_retries == 5
    assert _no_sleep == [0.5, 1.0, 2.0, 2.0, 2.0]  # back-off, capped


def test_terminal_errors_are_not_retried() -> None:
    warehouse: Any = FlakyWarehouse(failures=1, error=TerminalError("ClickHouse error 60 UNKNOWN_TABLE"))
    with pytest.raises(TerminalError):
        _load(warehouse, _output(), StreamSettings(), StreamReport(), _Stop())
    assert warehouse.attempts == 1
