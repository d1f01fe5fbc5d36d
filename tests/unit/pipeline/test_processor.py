"""One batch through the processor: Arrow tables, tokens, offsets, dedup across batches, SQL text."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import msgspec

from pipelines.batch_topics import of_topic, topic_codes
from pipelines.kernel import RawRecord
from pipelines.processor import RegistryView, StreamProcessor, _offset_ranges, dedup_token
from schemas import DeadLetterReason, RecordError, RecordKind, make_dead_letter
from tests.unit.pipeline.helpers import (
    DEAD_LETTERS_TOPIC,
    EVENTS_TOPIC,
    EXPOSURES_TOPIC,
    event,
    exposure,
    make_processor,
    minutes,
    raw,
    raw_event,
    raw_exposure,
)

SQL = Path(__file__).resolve().parents[3] / "sql"


def _processor() -> StreamProcessor:
    return make_processor(max_lateness=timedelta(days=1))


def test_a_mixed_batch_becomes_tables_tokens_and_offsets() -> None:
    processor = _processor()
    raws = [
        raw_event(event("e1", "u1", at=minutes(1)), 7, partition=1),  # before its exposure in the batch
        raw_exposure(exposure("x1", "u1", variation=1, at=minutes(0)), 3, partition=1),
        raw_exposure(exposure("x1", "u1", variation=1, at=minutes(0)), 4, partition=1),  # re-send
        raw(b"garbage", 5),
        raw_event(event("e2", "u9", name="signup"), 8, partition=1),
    ]
    out = processor.process(raws, minutes(2))
    assert out.exposures.num_rows == 1
    assert out.exposures.column("variation_name").to_pylist() == ["Treatment"]
    assert "ingested_at" in out.exposures.column_names and "ingested_at" in out.events.column_names
    assert out.events.column("event_id").to_pylist() == ["e1"]
    assert out.attributed.to_pylist()[0]["experiment_key"] == "exp-a"
    assert out.attributed.column("variation_id").to_pylist() == [1]
    assert sorted(d.reason for d in out.dead_letters) == [
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.UNKNOWN_EVENT_NAME,
    ]
    assert out.duplicates == 1
    assert out.offsets == {(EXPOSURES_TOPIC, 0): 6, (EXPOSURES_TOPIC, 1): 5, (EVENTS_TOPIC, 1): 9}
    assert out.tokens["xp.events"] == "xp.events|xp.events/1/7-8,xp.exposures/0/5-5,xp.exposures/1/3-4"


def test_a_replayed_batch_after_commit_loads_nothing_again() -> None:
    processor = _processor()
    raws = [
        raw_exposure(exposure("x1", "u1"), 0),
        raw_event(event("e1", "u1", at=minutes(1)), 0),
        raw(b"{", 1),
    ]
    first = processor.process(raws, minutes(2))
    processor.remember_ids(first)
    again = processor.process(raws, minutes(3))
    assert (again.exposures.num_rows, again.events.num_rows, again.attributed.num_rows) == (0, 0, 0)
    assert again.dead_letters == [] and again.duplicates == 2


def test_dedup_token_is_deterministic_and_order_free() -> None:
    a = dedup_token("t", {("x", 1): (0, 9), ("x", 0): (5, 6)})
    assert a == dedup_token("t", {("x", 0): (5, 6), ("x", 1): (0, 9)}) == "t|x/0/5-6,x/1/0-9"


def test_counter_migration_reads_only_tables_that_exist_and_names_every_view() -> None:
    text = (SQL / "migrations" / "0003_stream_state_and_counters.sql").read_text()
    for name in ("attributed_events", "unit_exposures", "exposure_counts_minute", "unit_metric_state"):
        assert f"CREATE TABLE IF NOT EXISTS xp.{name}" in text
    assert text.count("CREATE MATERIALIZED VIEW IF NOT EXISTS") == 3
    assert "CHECK" not in text  # chDB drops rows violating CHECK constraints silently
    for query in (
        "realtime_exposures",
        "realtime_metric_stats",
        "stream_recent_ids",
        "stream_unit_exposures",
    ):
        assert (SQL / "queries" / f"{query}.sql").read_text().startswith(f"-- {query}:")


def test_registry_view_from_a_snapshot_takes_variations_names_overrides_and_metric_windows() -> None:
    from assignment.metrics_catalog import Aggregation, MetricDefinition, MetricType
    from assignment.registry import ExperimentSpec, MetricsSpec, RegistrySnapshot, VariationSpec
    from schemas import ExperimentStatus

    short = MetricDefinition(
        name="quick-buys",
        type=MetricType.MEAN,
        event_name="purchase",
        aggregation=Aggregation.COUNT,
        window_hours=2,
    )
    signup = MetricDefinition(
        name="signups",
        type=MetricType.MEAN,
        event_name="signup",
        aggregation=Aggregation.COUNT,
        window_hours=24,
    )
    spec = ExperimentSpec(
        key="checkout",
        name="Checkout",
        status=ExperimentStatus.RUNNING,
        feature_key="checkout",
        variations=(VariationSpec(0, "control", "Control", 0.5), VariationSpec(1, "green", "Green", 0.5)),
        metrics=MetricsSpec(primary=("quick-buys", "signups"), definitions=(short, signup)),
    )
    view = RegistryView.from_snapshot(RegistrySnapshot(experiments={"checkout": spec}))
    assert view.known_variations == {"checkout": frozenset({0, 1})}
    assert view.variation_names == {("checkout", 0): "Control", ("checkout", 1): "Green"}
    assert view.attribution_windows[("checkout", "signup")] == timedelta(hours=24)
    assert view.attribution_windows[("checkout", "purchase")] == timedelta(hours=2)
    assert view.event_names is not None and {"signup", "purchase", "pageview"} <= view.event_names
    assert view.override_for is not None


def test_offset_ranges_per_topic_partition_in_order_of_first_appearance() -> None:
    offsets = [("e", 1, 9), ("x", 0, 5), ("e", 1, 3), ("x", 2, 7), ("x", 0, 4), ("e", 1, 12), ("x", 0, 6)]
    raws = [RawRecord(topic, partition, offset, None, b"") for topic, partition, offset in offsets]
    ranges = _offset_ranges(raws)
    assert list(ranges.items()) == [(("e", 1), (3, 12)), (("x", 0), (4, 6)), (("x", 2), (7, 7))]
    assert _offset_ranges(raws[:1]) == {("e", 1): (9, 9)}
    assert _offset_ranges([]) == {}
    assert _offset_ranges([RawRecord("e", -1, 2, None, b""), RawRecord("e", 3, 1, None, b"")]) == {
        ("e", -1): (2, 2),
        ("e", 3): (1, 1),
    }


def test_offset_ranges_match_a_record_by_record_reference_on_random_batches() -> None:
    rng = random.Random(22)
    for _ in range(500):
        raws = [
            RawRecord(rng.choice(["e", "x", "dl"]), rng.randrange(40_000), rng.randrange(1 << 40), None, b"")
            if rng.random() < 0.02
            else RawRecord(rng.choice(["e", "x", "dl"]), rng.randrange(6), rng.randrange(500), None, b"")
            for _ in range(rng.randrange(1, 60))
        ]
        expected: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, offset, *_ in raws:
            first, last = expected.get((topic, partition), (offset, offset))
            expected[(topic, partition)] = (min(first, offset), max(last, offset))
        assert list(_offset_ranges(raws).items()) == list(expected.items())
        coded = topic_codes(raws)
        assert list(_offset_ranges(raws, coded).items()) == list(expected.items())
        for topic in ("e", "x", "dl", "other", None):
            assert of_topic(raws, coded, topic) == [raw for raw in raws if raw.topic == topic]


def _collector_letter(detail: str) -> bytes:
    error = RecordError(DeadLetterReason.VALUE_NOT_FINITE, detail)
    letter = make_dead_letter(
        error, b'{"value":NaN}', record_kind=RecordKind.METRIC_EVENT, source_topic="http"
    )
    return msgspec.json.encode(letter)


def test_collector_dead_letters_on_the_topic_are_loaded_once_and_the_streams_own_are_skipped() -> None:
    processor = _processor()
    collector = _collector_letter("NaN at $.value")
    first = processor.process([raw(b"{", 0)], minutes(1))  # the stream's own dead letter
    processor.remember_ids(first)
    (own,) = first.dead_letters
    raws = [
        RawRecord(DEAD_LETTERS_TOPIC, 0, 0, None, msgspec.json.encode(own), None),  # skipped
        RawRecord(DEAD_LETTERS_TOPIC, 0, 1, None, collector, None),
        RawRecord(DEAD_LETTERS_TOPIC, 0, 2, None, collector, None),  # a re-send: same id
        RawRecord(DEAD_LETTERS_TOPIC, 1, 0, None, b"not a dead letter", None),
        raw_event(event("e1", "u1", at=minutes(1)), 0),
    ]
    out = processor.process(raws, minutes(2))
    assert [(d.source_topic, d.reason) for d in out.dead_letters] == [
        ("http", DeadLetterReason.VALUE_NOT_FINITE),
        (DEAD_LETTERS_TOPIC, DeadLetterReason.INVALID_JSON),
    ]
    assert out.dead_letters[0].original == b'{"value":NaN}'
    assert out.consumed == 1 and out.dead_letter_topic_records == 4
    assert out.offsets[(DEAD_LETTERS_TOPIC, 0)] == 3
    assert "xp.dead-letters/0/0-2" in out.tokens["xp.dead_letters"]
    processor.remember_ids(out)
    again = processor.process(raws[1:3], minutes(3))  # re-read after a restart with other boundaries
    assert again.dead_letters == []
