"""Builders of exposures, events and raw Kafka records for the pipeline unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.attribution import AttributionState
from pipelines.kernel import RawRecord, ValidationRules
from pipelines.processor import RegistryView, StreamProcessor
from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T0_MS = round(T0.timestamp() * 1000)
"""T0 as a Kafka timestamp (epoch milliseconds)."""
EXPOSURES_TOPIC = "xp.exposures"
EVENTS_TOPIC = "xp.events"
DEAD_LETTERS_TOPIC = "xp.dead-letters"

_exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
_event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def exposure(
    exposure_id: str, unit: str, experiment: str = "exp-a", variation: int = 0, at: datetime = T0
) -> Exposure:
    return Exposure(
        exposure_id=exposure_id,
        unit_id=unit,
        hash_attribute="id",
        experiment_key=experiment,
        variation_id=variation,
        variation_key=str(variation),
        source=ExposureSource.SDK,
        exposed_at=at,
    )


def event(
    event_id: str, unit: str, name: str = "purchase", value: float | None = 1.0, at: datetime = T0
) -> MetricEvent:
    return MetricEvent(event_id=event_id, unit_id=unit, event_name=name, value=value, occurred_at=at)


def raw(value: bytes | None, offset: int, topic: str = EXPOSURES_TOPIC, partition: int = 0) -> RawRecord:
    return RawRecord(topic, partition, offset, b"k", value, T0_MS)


def raw_exposure(record: Exposure, offset: int, partition: int = 0) -> RawRecord:
    return RawRecord(
        EXPOSURES_TOPIC, partition, offset, record.unit_id.encode(), _exposure_codec.encode(record), T0_MS
    )


def raw_event(record: MetricEvent, offset: int, partition: int = 0) -> RawRecord:
    return RawRecord(
        EVENTS_TOPIC, partition, offset, record.unit_id.encode(), _event_codec.encode(record), T0_MS
    )


def make_processor(max_lateness: timedelta) -> StreamProcessor:
    """A processor for one two-variation experiment ``exp-a`` and the ``purchase`` event."""
    registry = RegistryView(
        {"exp-a": frozenset({0, 1})}, {("exp-a", 0): "Control", ("exp-a", 1): "Treatment"}
    )
    processor = StreamProcessor(
        exposures_topic=EXPOSURES_TOPIC,
        events_topic=EVENTS_TOPIC,
        rules=ValidationRules(known_event_names=frozenset({"purchase"}), max_lateness=max_lateness),
        registry=registry,
        attribution=AttributionState(default_window=timedelta(hours=1), hold=timedelta(minutes=5)),
        dedup_retention=timedelta(hours=1),
        dedup_max_ids=10_000,
        max_record_bytes=100_000,
        dead_letters_topic=DEAD_LETTERS_TOPIC,
    )
    processor.set_registry(registry)
    return processor
