"""Each record rule is declared once (pipelines/record_rules.py) and both forms of its predicate agree.

The column-wise form (``passes``) decides the common case and the per-record form (``problem``) the rest;
a rule is applied by both because ``validate_records`` runs the one list both ways.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from pipelines.kernel import (
    DecodedBatch,
    RawRecord,
    RecordRule,
    ValidationRules,
    epoch_ms,
    validate_records,
)
from pipelines.record_rules import EVENT_RULES, EXPOSURE_RULES
from schemas import DeadLetterReason, Exposure, MetricEvent, RecordCodec
from tests.unit.pipeline.helpers import (
    EVENTS_TOPIC,
    T0,
    T0_MS,
    event,
    exposure,
    minutes,
    raw_event,
    raw_exposure,
)

RULES = ValidationRules(
    max_future_skew=timedelta(minutes=5),
    max_lateness=timedelta(hours=1),
    known_event_names=frozenset({"purchase"}),
    known_variations={"exp-a": frozenset({0, 1})},
)
EXPOSURES = [
    exposure("ok", "u1"),
    exposure("unknown-experiment", "u1", experiment="nope"),
    exposure("unknown-variation", "u1", variation=7),
    exposure("future", "u1", at=minutes(6)),
    exposure("late", "u1", at=minutes(-61)),
    exposure("late-and-unknown", "u1", experiment="nope", at=minutes(-61)),
    exposure("edge-future", "u1", at=minutes(5)),
    exposure("edge-late", "u1", at=minutes(-60)),
]
EVENTS = [
    event("ok", "u1"),
    event("unknown-name", "u1", name="signup"),
    event("future", "u1", at=minutes(6)),
    event("late-and-unknown", "u1", name="signup", at=minutes(-61)),
]


def _batch(records: list, raws: list[RawRecord], rules: ValidationRules, time_field: str) -> DecodedBatch:
    times = epoch_ms((getattr(r, time_field) for r in records), len(records))
    kafka_ms = np.fromiter((r.timestamp_ms for r in raws), np.int64, len(raws))
    return DecodedBatch(records, raws, times, kafka_ms, rules)


@pytest.mark.parametrize(
    ("rules_list", "records", "time_field"),
    [(EXPOSURE_RULES, EXPOSURES, "exposed_at"), (EVENT_RULES, EVENTS, "occurred_at")],
    ids=["exposures", "events"],
)
def test_the_batch_form_never_passes_a_record_the_per_record_form_rejects(
    rules_list: tuple[RecordRule, ...], records: list, time_field: str
) -> None:
    raws = [RawRecord("t", 0, i, b"k", b"", T0_MS) for i in range(len(records))]
    batch = _batch(records, raws, RULES, time_field)
    rejected_somewhere = 0
    for rule in rules_list:
        passes = rule.passes(batch)
        assert passes is not None and len(passes) == len(records)
        for record, raw, passed in zip(records, raws, passes.tolist(), strict=True):
            problem = rule.problem(record, raw, RULES, T0)
            if passed:
                assert problem is None, (rule.name, record)
            else:
                rejected_somewhere += 1
    assert rejected_somewhere >= 3  # the batch holds records each rule rejects


def test_each_rule_is_named_once_with_its_own_reason() -> None:
    for rules_list in (EXPOSURE_RULES, EVENT_RULES):
        assert len({rule.name for rule in rules_list}) == len(rules_list)
        assert len({rule.reason for rule in rules_list}) == len(rules_list)
    assert [rule.reason for rule in EXPOSURE_RULES] == [
        DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        DeadLetterReason.UNKNOWN_EXPERIMENT,
        DeadLetterReason.UNKNOWN_VARIATION,
    ]
    assert [rule.reason for rule in EVENT_RULES] == [
        DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        DeadLetterReason.UNKNOWN_EVENT_NAME,
    ]


def test_without_registry_or_catalog_those_rules_are_off() -> None:
    open_rules = ValidationRules(max_lateness=timedelta(hours=1))
    raws = [RawRecord("t", 0, i, b"k", b"", T0_MS) for i in range(len(EXPOSURES))]
    batch = _batch(EXPOSURES, raws, open_rules, "exposed_at")
    assert [rule.passes(batch) is None for rule in EXPOSURE_RULES] == [False, True, True]


def _unit_not_banned(record: MetricEvent, raw: RawRecord, rules: ValidationRules, now: object) -> str | None:
    return f"unit {record.unit_id} is banned" if record.unit_id == "banned" else None


def _units_not_banned(batch: DecodedBatch) -> np.ndarray:
    return np.array([record.unit_id != "banned" for record in batch.records], np.bool_)


BANNED = RecordRule("unit_not_banned", DeadLetterReason.SCHEMA_VIOLATION, _unit_not_banned, _units_not_banned)


@pytest.mark.parametrize("per_record", [False, True], ids=["batch-form-decides", "every-record-per-record"])
def test_a_rule_added_to_the_list_is_applied_on_every_path(per_record: bool) -> None:
    rules = RULES
    if per_record:  # bounds too large for the integer check: every record is judged per record
        rules = ValidationRules(
            max_future_skew=timedelta(days=365 * 1600),
            max_lateness=timedelta(days=365 * 1600),
            known_event_names=RULES.known_event_names,
        )
    raws = [raw_event(event("fine", "u1"), 0), raw_event(event("banned-one", "banned"), 1)]
    codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    result = validate_records(codec, raws, rules, T0, (*EVENT_RULES, BANNED), lambda r: r.occurred_at)
    assert [record.event_id for record, _ in result.oks] == ["fine"]
    assert [(d.reason, d.detail) for d in result.errs] == [
        (DeadLetterReason.SCHEMA_VIOLATION, "unit banned is banned")
    ]
    assert result.times_ms.tolist() == [T0_MS]


def test_the_first_rule_broken_gives_the_reason() -> None:
    codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    raws = [raw_exposure(record, i) for i, record in enumerate(EXPOSURES)]
    result = validate_records(codec, raws, RULES, T0, EXPOSURE_RULES, lambda r: r.exposed_at)
    assert [record.exposure_id for record, _ in result.oks] == ["ok", "edge-future", "edge-late"]
    reasons = {EXPOSURES[d.source_offset or 0].exposure_id: d.reason for d in result.errs}
    assert reasons == {
        "unknown-experiment": DeadLetterReason.UNKNOWN_EXPERIMENT,
        "unknown-variation": DeadLetterReason.UNKNOWN_VARIATION,
        "future": DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        "late": DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
        "late-and-unknown": DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS,
    }


def test_an_exception_in_a_rule_becomes_internal_error() -> None:
    def broken(record: MetricEvent, raw: RawRecord, rules: ValidationRules, now: object) -> str | None:
        raise RuntimeError("boom")

    def none_pass(batch: DecodedBatch) -> np.ndarray:
        return np.zeros(len(batch.records), np.bool_)

    rule = RecordRule("broken", DeadLetterReason.SCHEMA_VIOLATION, broken, none_pass)
    codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    raws = [raw_event(event("e1", "u1"), 0)]
    result = validate_records(codec, raws, RULES, T0, (rule,), lambda r: r.occurred_at)
    assert not result.oks
    assert [(d.reason, d.detail, d.source_topic) for d in result.errs] == [
        (DeadLetterReason.INTERNAL_ERROR, "RuntimeError: boom", EVENTS_TOPIC)
    ]
