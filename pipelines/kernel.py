"""The pure stream kernel: validate → deduplicate → enrich (exposures); attribution lives in attribution.py.

No Kafka, no warehouse: functions over batches of :class:`RawRecord` (what a consumer read) that return
oks and errs (bytewax style: a bad record becomes a :class:`~schemas.DeadLetter`, never an exception).
The worker (``pipelines/worker.py``) is the thin layer that feeds it and loads what it returns.

Timestamp bounds are checked against the record's **Kafka timestamp** (when it was produced), not the
wall clock, so re-processing the same record after a crash or a replay reaches the same verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec
import numpy as np

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
    "EnrichedExposures",
    "RawRecord",
    "SeenIds",
    "Validated",
    "ValidationRules",
    "enrich_exposures",
    "validate_events",
    "validate_exposures",
]

logger = logging.getLogger(__name__)

T = TypeVar("T", Exposure, MetricEvent)


class RawRecord(NamedTuple):
    """One Kafka record as read: where it came from and its bytes (a tuple: ~0.2 µs to build per message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    """The Kafka timestamp (producer create time or broker append time) in epoch milliseconds; None when
    unavailable. Kept as an integer: a ``datetime`` is built only for the detail of a dead letter."""

    @property
    def timestamp(self) -> datetime | None:
        """The Kafka timestamp as an aware UTC datetime (None when unavailable)."""
        millis = self.timestamp_ms
        return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)


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

    oks: list[tuple[T, RawRecord]] = field(default_factory=list)
    errs: list[DeadLetter] = field(default_factory=list)
    times_ms: Any = None
    """The record times (``exposed_at``, ``occurred_at``) of ``oks`` as epoch-ms ``int64`` (numpy), aligned
    with ``oks``, when the fast path computed them (the Arrow column reuses them); else None."""


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


def _check_time(at: datetime, raw: RawRecord, rules: ValidationRules, now: datetime, name: str) -> str | None:
    reference = raw.timestamp or now
    if at > reference + rules.max_future_skew:
        return f"{name} {at.isoformat()} is more than {rules.max_future_skew} after {reference.isoformat()}"
    if at < reference - rules.max_lateness:
        return f"{name} {at.isoformat()} is more than {rules.max_lateness} before {reference.isoformat()}"
    return None


def _validate(
    codec: RecordCodec[T],
    raws: Sequence[RawRecord],
    now: datetime,
    check: Callable[[T, RawRecord], tuple[DeadLetterReason, str] | None],
) -> Validated[T]:
    result: Validated[T] = Validated()
    decoded = codec.decode_many([raw.value for raw in raws])
    for position, error in decoded.failures:
        raw = raws[position]
        result.errs.append(_dead_letter(codec, raw, error.reason, error.detail, now))
    for record, position in zip(decoded.oks, decoded.ok_positions, strict=True):
        raw = raws[position]
        try:
            problem = check(record, raw)
        except Exception as exc:  # a bug must not crash the worker: keep the record as a dead letter
            logger.exception("internal error while validating", extra={"topic": raw.topic})
            problem = (DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        if problem is None:
            result.oks.append((record, raw))
        else:
            result.errs.append(_dead_letter(codec, raw, problem[0], problem[1], now))
    return result


_SAFE_BOUNDS = timedelta(days=365 * 1500)
"""Skew + lateness below which the fast time check cannot disagree with :func:`_check_time`.

Decoded times lie in [1900, 2300) (``schemas.records.utc_ms``), so with ``|skew| + |lateness|`` under
1500 years ``reference ± bound`` never leaves datetime's range whenever the record is within bounds:
``at - reference`` compared with the bounds then reaches exactly ``_check_time``'s verdict (it is only
called, for its detail, on records out of bounds)."""


def _time_bounds(rules: ValidationRules) -> tuple[int, int] | None:
    """(skew, −lateness) in whole milliseconds for the fast integer check, or None to use the exact one.

    Record and Kafka times are whole milliseconds, so ``record − reference`` in ms compared with the
    bounds floored to ms reaches ``_check_time``'s verdict; bounds with sub-ms parts or absurd sizes
    take the exact path."""
    skew, lateness = rules.max_future_skew, rules.max_lateness
    if abs(skew) + abs(lateness) >= _SAFE_BOUNDS:
        return None
    skew_ms, lateness_ms = skew // _MS, lateness // _MS
    if skew_ms * _MS != skew or lateness_ms * _MS != lateness:
        return None
    return skew_ms, -lateness_ms


_MS = timedelta(milliseconds=1)


def _internal_error(raw: RawRecord, exc: Exception) -> tuple[DeadLetterReason, str]:
    logger.exception("internal error while validating", extra={"topic": raw.topic})
    return (DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def validate_exposures(
    codec: RecordCodec[Exposure], raws: Sequence[RawRecord], rules: ValidationRules, now: datetime
) -> Validated[Exposure]:
    """Decode exposures; check time bounds and that experiment and variation are in the registry."""

    def check(record: Exposure, raw: RawRecord) -> tuple[DeadLetterReason, str] | None:
        late = _check_time(record.exposed_at, raw, rules, now, "exposed_at")
        if late is not None:
            return DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS, late
        if rules.known_variations is not None:
            variations = rules.known_variations.get(record.experiment_key)
            if variations is None:
                return (
                    DeadLetterReason.UNKNOWN_EXPERIMENT,
                    f"experiment {record.experiment_key!r} is not in the registry",
                )
            if record.variation_id not in variations:
                return (
                    DeadLetterReason.UNKNOWN_VARIATION,
                    f"experiment {record.experiment_key!r} has no variation {record.variation_id} "
                    f"(known: {sorted(variations)})",
                )
        return None

    bounds = _time_bounds(rules)
    if bounds is None:
        return _validate(codec, raws, now, check)
    known = rules.known_variations

    def good(records: list[Exposure]) -> np.ndarray | None:
        if known is None:
            return None
        empty: frozenset[int] = frozenset()
        pairs = zip(map(_experiment_key, records), map(_variation_id, records), strict=True)
        return np.fromiter((vid in known.get(key, empty) for key, vid in pairs), np.bool_, len(records))

    return _validate_fast(codec, raws, now, check, bounds, _exposed_at, good)


_exposed_at = attrgetter("exposed_at")
_occurred_at = attrgetter("occurred_at")
_experiment_key = attrgetter("experiment_key")
_variation_id = attrgetter("variation_id")
_event_name = attrgetter("event_name")
_kafka_ms = itemgetter(5)  # RawRecord.timestamp_ms


def epoch_ms(times: Any, count: int) -> np.ndarray:
    """Aware datetimes → epoch milliseconds (int64) as ``round(value.timestamp() * 1000)`` each: the same
    float64 product, rounded half-even (exact for the ms-truncated times of the records)."""
    seconds = np.fromiter(map(datetime.timestamp, times), np.float64, count)
    return np.rint(seconds * 1000.0).astype(np.int64)


def _validate_fast(
    codec: RecordCodec[T],
    raws: Sequence[RawRecord],
    now: datetime,
    check: Callable[[T, RawRecord], tuple[DeadLetterReason, str] | None],
    bounds: tuple[int, int],
    time_of: Callable[[T], datetime],
    known_of: Callable[[list[T]], np.ndarray | None],
) -> Validated[T]:
    """The same verdicts as :func:`_validate` with ``check``, the common case decided column-wise.

    Record times are converted once (numpy) and compared with the Kafka timestamps against the bounds in
    whole ms; ``known_of`` says which records the registry/catalog knows (None: all). Records that pass
    both are valid; the others (and every record when a Kafka timestamp is missing) go through ``check``
    for their verdict and detail. The times are kept for the Arrow column (:attr:`Validated.times_ms`)."""
    skew, neg_lateness = bounds
    result: Validated[T] = Validated()
    decoded = codec.decode_many([raw.value for raw in raws])
    for position, error in decoded.failures:
        result.errs.append(_dead_letter(codec, raws[position], error.reason, error.detail, now))
    records = decoded.oks
    count = len(records)
    ok_raws = list(raws) if not decoded.failures else [raws[p] for p in decoded.ok_positions]
    if not count:
        result.times_ms = np.zeros(0, np.int64)
        return result
    times = epoch_ms(map(time_of, records), count)
    references = list(map(_kafka_ms, ok_raws))
    if None in references:  # no Kafka timestamp (rare): every record through ``check``, against ``now``
        passed = np.zeros(count, np.bool_)
    else:
        delta = times - np.fromiter(references, np.int64, count)
        passed = (delta >= neg_lateness) & (delta <= skew)
        known = known_of(records)
        if known is not None:
            passed &= known
    if passed.all():
        result.oks = list(zip(records, ok_raws, strict=True))
        result.times_ms = times
        return result
    oks_append = result.oks.append
    kept: list[int] = []
    for index, (record, raw, fast) in enumerate(zip(records, ok_raws, passed.tolist(), strict=True)):
        if not fast:
            try:
                problem = check(record, raw)
            except Exception as exc:  # a bug must not crash the worker: keep the record as a dead letter
                problem = _internal_error(raw, exc)
            if problem is not None:
                result.errs.append(_dead_letter(codec, raw, problem[0], problem[1], now))
                continue
        oks_append((record, raw))
        kept.append(index)
    result.times_ms = times[np.array(kept, np.int64)]
    return result


def validate_events(
    codec: RecordCodec[MetricEvent], raws: Sequence[RawRecord], rules: ValidationRules, now: datetime
) -> Validated[MetricEvent]:
    """Decode metric events; check time bounds and that the event name is in the metric catalog."""

    def check(record: MetricEvent, raw: RawRecord) -> tuple[DeadLetterReason, str] | None:
        late = _check_time(record.occurred_at, raw, rules, now, "occurred_at")
        if late is not None:
            return DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS, late
        names = rules.known_event_names
        if names is not None and record.event_name not in names:
            return (
                DeadLetterReason.UNKNOWN_EVENT_NAME,
                f"event {record.event_name!r} is not in the metric catalog",
            )
        return None

    bounds = _time_bounds(rules)
    if bounds is None:
        return _validate(codec, raws, now, check)
    names = rules.known_event_names

    def good(records: list[MetricEvent]) -> np.ndarray | None:
        if names is None:
            return None
        return np.fromiter(map(names.__contains__, map(_event_name, records)), np.bool_, len(records))

    return _validate_fast(codec, raws, now, check, bounds, _occurred_at, good)


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
