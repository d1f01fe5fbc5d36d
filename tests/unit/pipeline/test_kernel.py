"""The pure kernel: validation (oks/errs with reasons), deduplication state, enrichment."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.kernel import (
    SeenIds,
    ValidationRules,
    enrich_exposures,
    validate_events,
    validate_exposures,
)
from schemas import TRUNCATED_ORIGINAL_BYTES, DeadLetterReason, Exposure, MetricEvent, Override, RecordCodec
from tests.unit.pipeline.helpers import (
    EVENTS_TOPIC,
    EXPOSURES_TOPIC,
    T0,
    event,
    exposure,
    minutes,
    raw,
    raw_event,
    raw_exposure,
)

RULES = ValidationRules(
    max_future_skew=timedelta(minutes=5),
    max_lateness=timedelta(hours=1),
    known_event_names=frozenset({"purchase", "pageview"}),
    known_variations={"exp-a": frozenset({0, 1})},
)
EXPOSURE_CODEC: RecordCodec[Exposure] = RecordCodec(Exposure, max_record_bytes=4096)
EXPOSURE_CODEC_SMALL: RecordCodec[Exposure] = RecordCodec(Exposure, max_record_bytes=1024)
EVENT_CODEC: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)


def test_valid_exposures_pass_and_each_invalid_one_gets_its_reason() -> None:
    raws = [
        raw_exposure(exposure("ok-1", "u1"), 0),
        raw(b"\xff\xfe", 1),
        raw(b'{"exposure_id": "trunc', 2),
        raw(None, 3),
        raw(b"x" * 5000, 4),  # over the limit: kept truncated, with its size and hash
        raw_exposure(exposure("unknown-exp", "u1", experiment="nope"), 5),
        raw_exposure(exposure("unknown-var", "u1", variation=7), 6),
        raw_exposure(exposure("future", "u1", at=minutes(6)), 7),
        raw_exposure(exposure("too-late", "u1", at=minutes(-61)), 8),
        raw_exposure(exposure("ok-2", "u2", variation=1, at=minutes(-59)), 9),
        raw(b'{"exposure_id": 1}', 10),
    ]
    result = validate_exposures(EXPOSURE_CODEC, raws, RULES, T0)
    assert [record.exposure_id for record, _ in result.oks] == ["ok-1", "ok-2"]
    reasons = {d.source_offset: d.reason for d in result.errs}
    assert reasons == {
        1: DeadLetterReason.INVALID_UTF8,
        2: DeadLetterReason.INVALID_JSON,
        3: DeadLetterReason.INVALID_JSON,
        4: DeadLetterReason.TOO_LARGE,
        5: DeadLetterReason.UNKNOWN_EXPERIMENT,
        6: DeadLetterReason.UNKNOWN_VARIATION,
        7: DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        8: DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        10: DeadLetterReason.SCHEMA_VIOLATION,
    }
    for dead in result.errs:
        assert dead.detail
        assert dead.source_topic == EXPOSURES_TOPIC
        assert dead.source_offset is not None
        whole = raws[dead.source_offset].value or b""
        assert dead.original_size == len(whole)
        assert dead.original_sha256 == hashlib.sha256(whole).hexdigest()
        if dead.reason is DeadLetterReason.TOO_LARGE:  # only the first bytes of an over-limit record
            assert dead.original == whole[:TRUNCATED_ORIGINAL_BYTES] != whole
        else:
            assert dead.original == whole


def test_timestamp_bounds_use_the_kafka_timestamp_so_replays_agree() -> None:
    late = raw_exposure(exposure("e", "u1", at=minutes(-30)), 0)
    # Processed two hours after it was produced: still within lateness of its Kafka timestamp.
    result = validate_exposures(EXPOSURE_CODEC, [late], RULES, T0 + timedelta(hours=2))
    assert len(result.oks) == 1


def test_without_a_registry_experiments_are_not_checked() -> None:
    rules = ValidationRules(known_variations=None)
    result = validate_exposures(EXPOSURE_CODEC, [raw_exposure(exposure("e", "u", "any"), 0)], rules, T0)
    assert len(result.oks) == 1


def test_events_with_unknown_names_are_dead_lettered() -> None:
    raws = [
        raw_event(event("ok", "u1"), 0),
        raw_event(event("bad", "u1", name="signup"), 1),
        raw(b'{"event_id": "x", "unit_id": "u"}', 2, topic=EVENTS_TOPIC),
    ]
    result = validate_events(EVENT_CODEC, raws, RULES, T0)
    assert [record.event_id for record, _ in result.oks] == ["ok"]
    assert [(d.source_offset, d.reason) for d in result.errs] == [
        (2, DeadLetterReason.MISSING_FIELD),
        (1, DeadLetterReason.UNKNOWN_EVENT_NAME),
    ]
    assert {d.record_kind.value for d in result.errs} == {"metric_event"}


def test_deduplicate_drops_ids_seen_before_and_repeats_within_a_batch() -> None:
    seen = SeenIds(timedelta(hours=1), max_ids=1000)
    first = [
        (exposure("a", "u"), raw(b"", 0)),
        (exposure("a", "u"), raw(b"", 1)),
        (exposure("b", "u"), raw(b"", 2)),
    ]
    fresh, duplicates = seen.deduplicate(first, lambda e: e.exposure_id, T0)
    assert [e.exposure_id for e, _ in fresh] == ["a", "b"] and duplicates == 1
    seen.commit(["a", "b"], T0)
    fresh, duplicates = seen.deduplicate([(exposure("b", "u"), raw(b"", 3))], lambda e: e.exposure_id, T0)
    assert fresh == [] and duplicates == 1


def test_dedup_state_forgets_after_retention_and_beyond_its_cap() -> None:
    seen = SeenIds(timedelta(minutes=10), max_ids=1000)
    seen.commit(["old"], T0)
    seen.commit(["new"], minutes(11))
    assert "old" not in seen and "new" in seen
    capped = SeenIds(timedelta(days=1), max_ids=1000)
    capped.commit([str(i) for i in range(1500)], T0)
    # The oldest slice (1000 // 16 ids) goes first: between 1000 − 62 and 1000 of the newest are kept.
    assert 1000 - 1000 // 16 <= len(capped) <= 1000
    assert "0" not in capped and "1499" in capped
    newest = [str(i) for i in range(1500 - len(capped), 1500)]
    assert all(capped.contains_many(newest)) and not any(capped.contains_many(["0", "437", "nope"]))


def test_enrich_fills_variation_names_and_marks_overridden_units() -> None:
    overrides = {("exp-a", "u2"): Override(experiment_key="exp-a", unit_id="u2", variation_id=1)}

    def override_for(experiment: str, unit: str, at: datetime) -> Override | None:
        return overrides.get((experiment, unit))

    records = [
        exposure("1", "u1", variation=0),
        exposure("2", "u2", variation=1),
        exposure("3", "u3", variation=1),
    ]
    names = {("exp-a", 0): "Control", ("exp-a", 1): "Green button"}
    now = datetime(2024, 5, 1, 13, tzinfo=UTC)
    enriched = enrich_exposures(records, names, override_for, now)
    assert enriched.variation_names == ["Control", "Green button", "Green button"]
    assert [e.overridden for e in enriched.records] == [False, True, False]
    assert enriched.ingested_at == now


def _event_json(value: str, extra: str = "") -> bytes:
    head = f'{{"event_id":"e-{value}","unit_id":"u1","event_name":"purchase","value":{value},'
    return (head + f'"occurred_at":"2024-05-01T12:00:00Z"{extra}}}').encode()


POISON = {
    "NaN": DeadLetterReason.VALUE_NOT_FINITE,
    "Infinity": DeadLetterReason.VALUE_NOT_FINITE,
    "-Infinity": DeadLetterReason.VALUE_NOT_FINITE,
    "1e999": DeadLetterReason.VALUE_NOT_FINITE,
    "-1e999": DeadLetterReason.VALUE_NOT_FINITE,
    "1.7e308": DeadLetterReason.VALUE_OUT_OF_RANGE,
    "-2e15": DeadLetterReason.VALUE_OUT_OF_RANGE,
}
FINE = ["null", "0", "-1e15", "1e15", "19.99"]


@pytest.mark.parametrize("checked_per_record", [False, True], ids=["fast-path", "per-record-path"])
def test_poison_values_are_dead_lettered_with_their_reason_on_every_kernel_path(
    checked_per_record: bool,
) -> None:
    # Bounds too large for the integer fast check send every record through ``check`` (_validate):
    # the value rule must hold there too, not only in the column-wise fast path.
    rules = RULES
    if checked_per_record:
        rules = ValidationRules(
            max_future_skew=timedelta(days=365 * 1600),
            max_lateness=timedelta(days=365 * 1600),
            known_event_names=RULES.known_event_names,
        )
    values = [*FINE, *POISON]
    raws = [raw(_event_json(value), i, topic=EVENTS_TOPIC) for i, value in enumerate(values)]
    result = validate_events(EVENT_CODEC, raws, rules, T0)
    assert [record.event_id for record, _ in result.oks] == [f"e-{value}" for value in FINE]
    reasons = {values[d.source_offset or 0]: d.reason for d in result.errs}
    assert reasons == POISON
    for dead in result.errs:
        assert dead.original == raws[dead.source_offset or 0].value  # the bytes as produced
        assert "value" in dead.detail or "Number out of range" in dead.detail


def test_value_bound_is_a_setting() -> None:
    codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent, max_abs_metric_value=100.0)
    raws = [raw(_event_json(v), i, topic=EVENTS_TOPIC) for i, v in enumerate(["100", "100.5", "-101"])]
    result = validate_events(codec, raws, RULES, T0)
    assert [record.value for record, _ in result.oks] == [100.0]
    assert {d.reason for d in result.errs} == {DeadLetterReason.VALUE_OUT_OF_RANGE}


def test_json_nested_ten_thousand_deep_gets_a_schema_reason_not_internal_error() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    raws = [
        raw(_event_json("1", f',"extra":{deep}'), 0, topic=EVENTS_TOPIC),
        raw(deep.encode(), 1, topic=EVENTS_TOPIC),
        raw_event(event("fine", "u1"), 2),
    ]
    result = validate_events(EVENT_CODEC, raws, RULES, T0)
    assert [record.event_id for record, _ in result.oks] == ["fine"]
    assert [d.reason for d in result.errs] == [DeadLetterReason.SCHEMA_VIOLATION] * 2
    assert "nested too deeply" in result.errs[0].detail


def test_over_limit_original_is_truncated_with_size_and_hash() -> None:
    giant = b'{"exposure_id":"' + b"g" * 50_000 + b'"}'
    result = validate_exposures(EXPOSURE_CODEC_SMALL, [raw(giant, 0)], RULES, T0)
    (dead,) = result.errs
    assert dead.reason is DeadLetterReason.TOO_LARGE
    assert dead.original == giant[:TRUNCATED_ORIGINAL_BYTES]
    assert dead.original_size == len(giant)
    assert dead.original_sha256 == hashlib.sha256(giant).hexdigest()
