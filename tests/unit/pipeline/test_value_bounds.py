"""Property: a metric value is loaded iff it is finite and within the bound, whichever way it is decoded."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DeadLetterReason, MetricEvent, RecordCodec, RecordError

BOUND = 1e6
CODEC: RecordCodec[MetricEvent] = RecordCodec(MetricEvent, max_abs_metric_value=BOUND)


def _record(value: float | None, event_id: str = "e") -> bytes:
    body = {"event_id": event_id, "unit_id": "u", "event_name": "purchase", "value": value}
    return json.dumps({**body, "occurred_at": "2026-01-01T00:00:00Z"}, allow_nan=True).encode()


def _expected(value: float | None) -> DeadLetterReason | None:
    if value is None or (math.isfinite(value) and abs(value) <= BOUND):
        return None
    return (
        DeadLetterReason.VALUE_NOT_FINITE if not math.isfinite(value) else DeadLetterReason.VALUE_OUT_OF_RANGE
    )


values = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_one_record_gets_the_verdict_of_its_value(value: float | None) -> None:
    try:
        record = CODEC.decode(_record(value))
    except RecordError as error:
        assert error.reason == _expected(value)
    else:
        assert _expected(value) is None
        assert record.value == value


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(values, max_size=40))
def test_a_batch_gets_the_same_verdicts_as_its_records_one_by_one(batch: list[float | None]) -> None:
    raws = [_record(value, f"e{i}") for i, value in enumerate(batch)]
    decoded = CODEC.decode_many(raws)
    assert [(p, e.reason) for p, e in decoded.failures] == [
        (i, _expected(v)) for i, v in enumerate(batch) if _expected(v) is not None
    ]
    assert decoded.ok_positions == [i for i, v in enumerate(batch) if _expected(v) is None]
