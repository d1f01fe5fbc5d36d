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
from typing import Generic, NamedTuple, TypeVar

import msgspec

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
    # Fast path, same verdicts as ``check``: records within bounds and known skip the closure call.
    skew, neg_lateness = bounds
    timestamp = datetime.timestamp
    known = rules.known_variations
    result: Validated[Exposure] = Validated()
    oks_append = result.oks.append
    decoded = codec.decode_many([raw.value for raw in raws])
    for position, error in decoded.failures:
        result.errs.append(_dead_letter(codec, raws[position], error.reason, error.detail, now))
    for record, position in zip(decoded.oks, decoded.ok_positions, strict=True):
        raw = raws[position]
        try:
            reference = raw.timestamp_ms  # None (rare): the exact check below, against ``now``
            if (
                reference is not None
                and neg_lateness <= round(timestamp(record.exposed_at) * 1000) - reference <= skew
            ):
                if known is None:
                    oks_append((record, raw))
                    continue
                variations = known.get(record.experiment_key)
                if variations is not None and record.variation_id in variations:
                    oks_append((record, raw))
                    continue
        except Exception:  # ``check`` below reaches the same verdict (or raises the same exception)
            pass
        try:
            problem = check(record, raw)
        except Exception as exc:  # a bug must not crash the worker: keep the record as a dead letter
            problem = _internal_error(raw, exc)
        if problem is None:
            oks_append((record, raw))
        else:
            result.errs.append(_dead_letter(codec, raw, problem[0], problem[1], now))
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
    # Fast path, same verdicts as ``check``: records within bounds and known skip the closure call.
    skew, neg_lateness = bounds
    timestamp = datetime.timestamp
    names = rules.known_event_names
    result: Validated[MetricEvent] = Validated()
    oks_append = result.oks.append
    decoded = codec.decode_many([raw.value for raw in raws])
    for position, error in decoded.failures:
        result.errs.append(_dead_letter(codec, raws[position], error.reason, error.detail, now))
    for record, position in zip(decoded.oks, decoded.ok_positions, strict=True):
        raw = raws[position]
        try:
            reference = raw.timestamp_ms  # None (rare): the exact check below, against ``now``
            if (
                reference is not None
                and neg_lateness <= round(timestamp(record.occurred_at) * 1000) - reference <= skew
                and (names is None or record.event_name in names)
            ):
                oks_append((record, raw))
                continue
        except Exception:  # ``check`` below reaches the same verdict (or raises the same exception)
            pass
        try:
            problem = check(record, raw)
        except Exception as exc:  # a bug must not crash the worker: keep the record as a dead letter
            problem = _internal_error(raw, exc)
        if problem is None:
            oks_append((record, raw))
        else:
            result.errs.append(_dead_letter(codec, raw, problem[0], problem[1], now))
    return result


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
