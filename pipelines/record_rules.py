"""The rules a decoded record must pass beyond its schema, each declared once (:class:`RecordRule`).

A rule has a name, the dead-letter reason it gives, and its predicate in two forms that must agree: per
record (``problem``: the detail of a failure) and over a batch (``passes``: numpy, the common case).
:func:`pipelines.kernel.validate_records` runs every rule of a list both ways, so a rule added to a list
is applied by both paths: the batch decides the records that pass every rule, the per-record form gives
the verdict and detail of the rest. Pure: no Kafka, no warehouse.

Time bounds compare the record's time with its **Kafka timestamp** (when it was produced), not the wall
clock, so re-processing the same record after a crash or a replay reaches the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from schemas import DeadLetterReason, Exposure, MetricEvent

if TYPE_CHECKING:
    from pipelines.field_lists import FieldLists
    from pipelines.kernel import RawRecord, ValidationRules

__all__ = ["EVENT_RULES", "EXPOSURE_RULES", "DecodedBatch", "RecordRule"]

T = TypeVar("T", Exposure, MetricEvent)


def _check_time(at: datetime, raw: RawRecord, rules: ValidationRules, now: datetime, name: str) -> str | None:
    reference = raw.timestamp or now
    if at > reference + rules.max_future_skew:
        return f"{name} {at.isoformat()} is more than {rules.max_future_skew} after {reference.isoformat()}"
    if at < reference - rules.max_lateness:
        return f"{name} {at.isoformat()} is more than {rules.max_lateness} before {reference.isoformat()}"
    return None


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


@dataclass(frozen=True, slots=True)
class DecodedBatch(Generic[T]):
    """What a rule's column-wise predicate sees: the decoded records of a batch, aligned with their raws."""

    records: list[T]
    raws: Sequence[RawRecord]
    times_ms: np.ndarray
    """The record times (``exposed_at``, ``occurred_at``) as epoch-ms ``int64``."""
    kafka_ms: np.ndarray | None
    """The Kafka timestamps as epoch-ms ``int64``; None when one of them is missing."""
    rules: ValidationRules
    fields: FieldLists | None = None
    """The fields of ``records`` as lists, read once for every stage (None: read them here)."""

    def field(self, name: str) -> list[Any]:
        """The values of field ``name`` of the records, in order."""
        if self.fields is not None:
            return self.fields[name]
        return list(map(attrgetter(name), self.records))


@dataclass(frozen=True, slots=True)
class RecordRule(Generic[T]):
    """One check a decoded record must pass beyond its schema, declared once for both paths.

    :func:`validate_records` decides the common case column-wise (``passes`` of every rule, ANDed) and
    sends only the records that fail some rule through ``problem`` of every rule in order: the first
    problem found is the record's dead letter (``reason``, the problem as detail). A rule therefore can
    never be applied by one path and skipped by the other. ``passes`` must never accept a record that
    ``problem`` rejects (tests/unit/pipeline/test_record_rules.py checks it); it may reject one that
    ``problem`` accepts (that record is then kept)."""

    name: str
    reason: DeadLetterReason
    problem: Callable[[T, RawRecord, ValidationRules, datetime], str | None]
    """The predicate per record: None when the record passes, else the dead letter's detail."""
    passes: Callable[[DecodedBatch[T]], np.ndarray | None]
    """The predicate over a batch: a numpy bool per record (True: passes), or None when every record
    passes (the rule is off, e.g. no registry)."""


def _time_rule(field_name: str) -> RecordRule[Any]:
    time_of = attrgetter(field_name)

    def problem(record: Any, raw: RawRecord, rules: ValidationRules, now: datetime) -> str | None:
        return _check_time(time_of(record), raw, rules, now, field_name)

    def passes(batch: DecodedBatch[Any]) -> np.ndarray | None:
        bounds = _time_bounds(batch.rules)
        if bounds is None or batch.kafka_ms is None:  # absurd bounds, or no Kafka timestamp: per record
            return np.zeros(len(batch.records), np.bool_)
        skew, neg_lateness = bounds
        delta = batch.times_ms - batch.kafka_ms
        passed: np.ndarray = (delta >= neg_lateness) & (delta <= skew)
        return passed

    return RecordRule("time_bounds", DeadLetterReason.TIMESTAMP_OUT_OF_BOUNDS, problem, passes)


def _experiment_problem(
    record: Exposure, raw: RawRecord, rules: ValidationRules, now: datetime
) -> str | None:
    known = rules.known_variations
    if known is None or record.experiment_key in known:
        return None
    return f"experiment {record.experiment_key!r} is not in the registry"


def _experiment_passes(batch: DecodedBatch[Exposure]) -> np.ndarray | None:
    known = batch.rules.known_variations
    if known is None:
        return None
    keys = batch.field("experiment_key")
    if known.keys() >= set(keys):  # the common case: one pass in C
        return None
    return np.fromiter(map(known.__contains__, keys), np.bool_, len(keys))


def _variation_problem(record: Exposure, raw: RawRecord, rules: ValidationRules, now: datetime) -> str | None:
    known = rules.known_variations
    variations = None if known is None else known.get(record.experiment_key)
    if variations is None or record.variation_id in variations:  # an unknown experiment: the rule above
        return None
    return (
        f"experiment {record.experiment_key!r} has no variation {record.variation_id} "
        f"(known: {sorted(variations)})"
    )


def _variation_passes(batch: DecodedBatch[Exposure]) -> np.ndarray | None:
    known = batch.rules.known_variations
    if known is None:
        return None
    empty: frozenset[int] = frozenset()
    pairs = zip(map(_experiment_key, batch.records), map(_variation_id, batch.records), strict=True)
    return np.fromiter((vid in known.get(key, empty) for key, vid in pairs), np.bool_, len(batch.records))


def _event_name_problem(
    record: MetricEvent, raw: RawRecord, rules: ValidationRules, now: datetime
) -> str | None:
    names = rules.known_event_names
    if names is None or record.event_name in names:
        return None
    return f"event {record.event_name!r} is not in the metric catalog"


def _event_name_passes(batch: DecodedBatch[MetricEvent]) -> np.ndarray | None:
    names = batch.rules.known_event_names
    if names is None:
        return None
    values = batch.field("event_name")
    if names.issuperset(values):  # the common case: one pass in C
        return None
    return np.fromiter(map(names.__contains__, values), np.bool_, len(values))


EXPOSURE_RULES: tuple[RecordRule[Exposure], ...] = (
    _time_rule("exposed_at"),
    RecordRule(
        "experiment_known", DeadLetterReason.UNKNOWN_EXPERIMENT, _experiment_problem, _experiment_passes
    ),
    RecordRule("variation_known", DeadLetterReason.UNKNOWN_VARIATION, _variation_problem, _variation_passes),
)
"""What a decoded exposure must satisfy, in the order its dead letter's reason is chosen."""

EVENT_RULES: tuple[RecordRule[MetricEvent], ...] = (
    _time_rule("occurred_at"),
    RecordRule(
        "event_name_known", DeadLetterReason.UNKNOWN_EVENT_NAME, _event_name_problem, _event_name_passes
    ),
)
"""What a decoded metric event must satisfy (its value bounds are the codec's: schemas.records)."""


_experiment_key = attrgetter("experiment_key")
_variation_id = attrgetter("variation_id")
_event_name = attrgetter("event_name")
