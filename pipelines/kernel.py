"""The pure stream kernel: validate → deduplicate → enrich (exposures); attribution lives in attribution.py.

No Kafka, no warehouse: functions over batches of :class:`RawRecord` (what a consumer read) that return
oks and errs (bytewax style: a bad record becomes a :class:`~schemas.DeadLetter`, never an exception).
The runners (``pipelines/kafka_runner.py``) are the thin layer that feeds it and loads what it returns.

What a decoded record must satisfy beyond its schema (time bounds against the Kafka timestamp, known
experiment, variation and event name) is a list of declared rules, :mod:`pipelines.record_rules`, applied
by :func:`validate_records`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np

from pipelines.field_lists import FieldLists
from pipelines.raw_batch import RawBatch, RawRecord
from pipelines.record_rules import EVENT_RULES, EXPOSURE_RULES, DecodedBatch, RecordRule
from pipelines.seen_ids import SeenIds
from schemas import (
    DeadLetter,
    DeadLetterReason,
    Exposure,
    MetricEvent,
    RecordCodec,
    RecordError,
    make_dead_letter,
)

__all__ = [
    "EVENT_RULES",
    "EXPOSURE_RULES",
    "DecodedBatch",
    "EnrichedExposures",
    "RawRecord",
    "RecordRule",
    "SeenIds",
    "Validated",
    "ValidationRules",
    "enrich_exposures",
    "validate_events",
    "validate_exposures",
    "validate_records",
]

logger = logging.getLogger(__name__)

T = TypeVar("T", Exposure, MetricEvent)


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """What a decoded record must also satisfy beyond its schema."""

    max_future_skew: timedelta = timedelta(minutes=5)
    max_lateness: timedelta = timedelta(days=7)
    known_event_names: frozenset[str] | None = None
    """None: any event name is accepted (no catalog)."""
    known_variations: Mapping[str, frozenset[int]] | None = None
    """Experiment key → variation ids; None: no registry, experiments are not checked."""


@dataclass(slots=True)
class Validated(Generic[T]):
    """A validated batch: valid records with their source, and dead letters for the rest."""

    records: list[T] = field(default_factory=list)
    raws: Sequence[RawRecord] = field(default_factory=list)
    """The source of each of ``records`` (aligned; a :class:`~pipelines.raw_batch.RawBatch` from
    :func:`validate_records`)."""
    errs: list[DeadLetter] = field(default_factory=list)
    times_ms: Any = None
    """The record times (``exposed_at``, ``occurred_at``) of ``records`` as epoch-ms ``int64`` (numpy),
    aligned with ``records``, when the fast path computed them (the Arrow column reuses them); else None."""
    fields: FieldLists | None = None
    """The fields of ``records`` as lists, shared by the later stages (:mod:`pipelines.field_lists`)."""

    @property
    def oks(self) -> list[tuple[T, RawRecord]]:
        """(record, its source) pairs."""
        return list(zip(self.records, self.raws, strict=True))


def _dead_letter(
    codec: RecordCodec[T], raw: RawRecord, reason: DeadLetterReason, detail: str, now: datetime
) -> DeadLetter:
    return make_dead_letter(
        RecordError(reason, detail),
        raw.value,
        record_kind=codec.record_kind,
        source_topic=raw.topic,
        source_partition=raw.partition,
        source_offset=raw.offset,
        original_key=raw.key,
        received_at=now,
        max_original_bytes=codec.max_record_bytes,
    )


def _internal_error(raw: RawRecord, exc: Exception) -> tuple[DeadLetterReason, str]:
    logger.exception("internal error while validating", extra={"topic": raw.topic})
    return (DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def validate_exposures(
    codec: RecordCodec[Exposure], raws: Sequence[RawRecord], rules: ValidationRules, now: datetime
) -> Validated[Exposure]:
    """Decode exposures; check time bounds and that experiment and variation are in the registry."""
    return validate_records(codec, raws, rules, now, EXPOSURE_RULES, _exposed_at)


def validate_events(
    codec: RecordCodec[MetricEvent], raws: Sequence[RawRecord], rules: ValidationRules, now: datetime
) -> Validated[MetricEvent]:
    """Decode metric events; check time bounds and that the event name is in the metric catalog."""
    return validate_records(codec, raws, rules, now, EVENT_RULES, _occurred_at)


_exposed_at = attrgetter("exposed_at")
_occurred_at = attrgetter("occurred_at")


def epoch_ms(times: Any, count: int) -> np.ndarray:
    """Aware datetimes → epoch milliseconds (int64) as ``round(value.timestamp() * 1000)`` each: the same
    float64 product, rounded half-even (exact for the ms-truncated times of the records)."""
    seconds = np.fromiter(map(datetime.timestamp, times), np.float64, count)
    return np.rint(seconds * 1000.0).astype(np.int64)


def validate_records(
    codec: RecordCodec[T],
    raws: Sequence[RawRecord],
    rules: ValidationRules,
    now: datetime,
    record_rules: Sequence[RecordRule[T]],
    time_of: Callable[[T], datetime],
) -> Validated[T]:
    """Decode a batch and apply ``record_rules``; the common case is decided column-wise.

    Codec failures become dead letters with the codec's reason. Record times are converted once (numpy)
    and kept for the Arrow column (:attr:`Validated.times_ms`). Every rule's ``passes`` runs over the
    batch; records that pass all are valid, the others go through every rule's ``problem`` in order for
    their verdict and detail (an exception there becomes ``internal_error``)."""
    result: Validated[T] = Validated()
    batch_raws = RawBatch.of(raws)
    decoded = codec.decode_many(batch_raws.values)
    for position, error in decoded.failures:
        result.errs.append(_dead_letter(codec, batch_raws[position], error.reason, error.detail, now))
    records = decoded.oks
    count = len(records)
    ok_raws = batch_raws if not decoded.failures else batch_raws.taken(decoded.ok_positions)
    if not count:
        result.times_ms = np.zeros(0, np.int64)
        return result
    times = epoch_ms(map(time_of, records), count)
    references = ok_raws.timestamps_ms
    kafka_ms = None if None in references else np.array(references, np.int64)
    fields = FieldLists(records)
    batch = DecodedBatch(records, ok_raws, times, kafka_ms, rules, fields)
    passed = np.ones(count, np.bool_)
    for rule in record_rules:
        verdicts = rule.passes(batch)
        if verdicts is not None:
            passed &= verdicts
    if passed.all():
        result.records, result.raws, result.times_ms, result.fields = records, ok_raws, times, fields
        return result
    kept: list[int] = []
    for index, (record, raw, fast) in enumerate(zip(records, ok_raws, passed.tolist(), strict=True)):
        if not fast:
            problem = _first_problem(record_rules, record, raw, rules, now)
            if problem is not None:
                result.errs.append(_dead_letter(codec, raw, problem[0], problem[1], now))
                continue
        kept.append(index)
    result.records = [records[index] for index in kept]
    result.raws = ok_raws.taken(kept)
    result.times_ms = times[np.array(kept, np.int64)]
    result.fields = fields.taken(kept, result.records)
    return result


def _first_problem(
    record_rules: Sequence[RecordRule[T]], record: T, raw: RawRecord, rules: ValidationRules, now: datetime
) -> tuple[DeadLetterReason, str] | None:
    """The reason and detail of the first rule ``record`` breaks; None when it breaks none."""
    try:
        for rule in record_rules:
            detail = rule.problem(record, raw, rules, now)
            if detail is not None:
                return rule.reason, detail
    except Exception as exc:  # a bug must not crash the worker: keep the record as a dead letter
        return _internal_error(raw, exc)
    return None


@dataclass(frozen=True, slots=True)
class VariationInfo:
    """What enrichment needs of one variation."""

    name: str


@dataclass(slots=True)
class EnrichedExposures:
    """Exposures after enrichment, with the columns the warehouse adds."""

    records: list[Exposure]
    variation_names: list[str]
    ingested_at: datetime


OverrideLookup = Callable[[str, str, datetime], object | None]
"""(experiment_key, unit_id, at) → an override or None: ``RegistrySnapshot.override_for``."""


def enrich_exposures(
    exposures: Sequence[Exposure],
    variation_names: Mapping[tuple[str, int], str],
    override_for: OverrideLookup | None,
    now: datetime,
) -> EnrichedExposures:
    """Fill ``variation_name`` from the registry, mark units with an override, stamp ``ingested_at``.

    A unit with an active registry override for the experiment at ``exposed_at`` is marked
    ``overridden`` (analysis excludes it) even when the producer did not say so. A variation without
    a registry name keeps its key as name.
    """
    records: list[Exposure] = []
    names: list[str] = []
    for exposure in exposures:
        if (
            override_for is not None
            and not exposure.overridden
            and override_for(exposure.experiment_key, exposure.unit_id, exposure.exposed_at) is not None
        ):
            exposure = msgspec.structs.replace(exposure, overridden=True)
        records.append(exposure)
        names.append(
            variation_names.get((exposure.experiment_key, exposure.variation_id), exposure.variation_key)
        )
    return EnrichedExposures(records, names, now.astimezone(UTC))
