"""The record decoders under generated hostile bytes: a coded error or a valid record, nothing else."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from schemas import DeadLetterReason, Exposure, MetricEvent, RecordCodec
from schemas.codec import RecordError
from tests.fuzz.strategies import RAW_VALUES, nested

_EVENTS: RecordCodec[MetricEvent] = RecordCodec(MetricEvent, max_record_bytes=100_000)
_EXPOSURES: RecordCodec[Exposure] = RecordCodec(Exposure, max_record_bytes=100_000)


def _outcome(codec: RecordCodec, value: bytes | None) -> tuple[str, object]:
    try:
        return "ok", codec.decode(value)
    except RecordError as error:
        assert error.reason is not DeadLetterReason.INTERNAL_ERROR, error.detail  # a bug, not a reason
        assert error.detail
        return "error", error.reason


@given(RAW_VALUES)
def test_decode_raises_only_coded_errors(value: bytes | None) -> None:
    for codec in (_EVENTS, _EXPOSURES):
        _outcome(codec, value)  # anything but RecordError propagates and fails the test


@given(st.lists(RAW_VALUES, max_size=25))
def test_batch_decode_classifies_each_value_like_decode(values: list[bytes | None]) -> None:
    for codec in (_EVENTS, _EXPOSURES):
        batch = codec.decode_many(values)
        positions = sorted([*batch.ok_positions, *(position for position, _ in batch.failures)])
        assert positions == list(range(len(values)))  # each value exactly once
        singles = [_outcome(codec, value) for value in values]
        for position, record in zip(batch.ok_positions, batch.oks, strict=True):
            assert singles[position] == ("ok", record)
        for position, error in batch.failures:
            assert singles[position] == ("error", error.reason)


@given(RAW_VALUES)
def test_a_decoded_event_value_is_finite(value: bytes | None) -> None:
    kind, record = _outcome(_EVENTS, value)
    if kind == "ok":
        assert isinstance(record, MetricEvent)
        assert record.value is None or math.isfinite(record.value)


def test_deeply_nested_json_gets_a_schema_reason_not_internal_error() -> None:
    for codec in (_EVENTS, _EXPOSURES):
        kind, reason = _outcome(codec, nested(10_000))
        assert kind == "error"
        assert reason in (DeadLetterReason.INVALID_JSON, DeadLetterReason.SCHEMA_VIOLATION)
