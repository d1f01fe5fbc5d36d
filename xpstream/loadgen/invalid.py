"""The documented mix of invalid records loadgen sends; the stream must dead-letter every one.

Kinds, in a fixed cycle (the k-th invalid record of a run has kind ``kind_of(k)``):

==========================  =========  ======================================================
kind                        topic      rejected by (reason)
==========================  =========  ======================================================
``invalid_utf8``            exposures  codec (``invalid_utf8``): a 0xFF byte inside a string
``truncated_json``          events     codec (``invalid_json``): a valid record cut in half
``missing_field``           exposures  codec (``missing_field``): no ``exposure_id``
``wrong_type``              events     codec (``schema_violation``): ``value`` is a string
``naive_timestamp``         exposures  codec (``bad_timestamp``): ``exposed_at`` has no zone
``unknown_experiment``      exposures  stream (``unknown_experiment``)
``unknown_variation``       exposures  stream (``unknown_variation``); needs one experiment
``unknown_event_name``      events     stream (``unknown_event_name``)
``oversized``               exposures  codec (``too_large``): ``max_record_bytes`` + 1 bytes
==========================  =========  ======================================================

``oversized`` records are large, so only invalid records number 9, 10 009, 20 009, … are oversized
(one per 10,000); the eight cheap kinds cycle for all the others. Without any running experiment,
``unknown_variation`` is replaced by ``unknown_experiment``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import msgspec

from schemas import Exposure, ExposureSource, MetricEvent

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec

__all__ = ["OVERSIZED_EVERY", "InvalidKind", "InvalidRecordFactory", "kind_of"]

UNKNOWN_EXPERIMENT_KEY: Final = "loadgen-unknown-experiment"
UNKNOWN_EVENT_NAME: Final = "loadgen_unknown_event"
OVERSIZED_EVERY: Final = 10_000
"""One invalid record in this many is oversized (starting with the 9th)."""


class InvalidKind(enum.StrEnum):
    """How an invalid record is broken (docs/loadgen.md lists each with the expected reason)."""

    INVALID_UTF8 = "invalid_utf8"
    TRUNCATED_JSON = "truncated_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NAIVE_TIMESTAMP = "naive_timestamp"
    UNKNOWN_EXPERIMENT = "unknown_experiment"
    UNKNOWN_VARIATION = "unknown_variation"
    UNKNOWN_EVENT_NAME = "unknown_event_name"
    OVERSIZED = "oversized"


_CYCLE: Final = (
    InvalidKind.INVALID_UTF8,
    InvalidKind.TRUNCATED_JSON,
    InvalidKind.MISSING_FIELD,
    InvalidKind.WRONG_TYPE,
    InvalidKind.NAIVE_TIMESTAMP,
    InvalidKind.UNKNOWN_EXPERIMENT,
    InvalidKind.UNKNOWN_VARIATION,
    InvalidKind.UNKNOWN_EVENT_NAME,
)


def kind_of(index: int, *, have_experiments: bool = True) -> InvalidKind:
    """Kind of the ``index``-th (0-based) invalid record of a run."""
    if index % OVERSIZED_EVERY == len(_CYCLE):
        return InvalidKind.OVERSIZED
    kind = _CYCLE[index % len(_CYCLE)]
    if kind is InvalidKind.UNKNOWN_VARIATION and not have_experiments:
        return InvalidKind.UNKNOWN_EXPERIMENT
    return kind


class InvalidRecordFactory:
    """Builds one invalid record: (logical topic, key, value bytes)."""

    def __init__(self, experiments: Sequence[ExperimentSpec], max_record_bytes: int) -> None:
        self.experiments = list(experiments)
        self.max_record_bytes = max_record_bytes
        self._encoder = msgspec.json.Encoder()

    def build(
        self, kind: InvalidKind, *, record_id: str, unit_id: str, at: datetime
    ) -> tuple[str, bytes, bytes]:
        from xpcore.kafka import EVENTS, EXPOSURES

        key = unit_id.encode()
        exposure = self._exposure(record_id, unit_id, at)
        event = MetricEvent(event_id=record_id, unit_id=unit_id, event_name="pageview", occurred_at=at)
        encode = self._encoder.encode
        if kind is InvalidKind.INVALID_UTF8:
            data = encode(msgspec.structs.replace(exposure, variation_key="\x00marker"))
            return EXPOSURES, key, data.replace(b"\\u0000marker", b"\xff\xfemarker")
        if kind is InvalidKind.TRUNCATED_JSON:
            data = encode(event)
            return EVENTS, key, data[: len(data) // 2]
        if kind is InvalidKind.MISSING_FIELD:
            fields = msgspec.to_builtins(exposure)
            del fields["exposure_id"]
            return EXPOSURES, key, encode(fields)
        if kind is InvalidKind.WRONG_TYPE:
            fields = msgspec.to_builtins(event)
            fields["value"] = "12.50"
            return EVENTS, key, encode(fields)
        if kind is InvalidKind.NAIVE_TIMESTAMP:
            fields = msgspec.to_builtins(exposure)
            fields["exposed_at"] = at.replace(tzinfo=None).isoformat(timespec="milliseconds")
            return EXPOSURES, key, encode(fields)
        if kind is InvalidKind.UNKNOWN_EXPERIMENT:
            unknown = msgspec.structs.replace(
                exposure, experiment_key=UNKNOWN_EXPERIMENT_KEY, feature_key=None
            )
            return EXPOSURES, key, encode(unknown)
        if kind is InvalidKind.UNKNOWN_VARIATION:
            spec = self.experiments[0]
            missing = max(v.id for v in spec.variations) + 1
            return (
                EXPOSURES,
                key,
                encode(msgspec.structs.replace(exposure, variation_id=missing, variation_key=f"v{missing}")),
            )
        if kind is InvalidKind.UNKNOWN_EVENT_NAME:
            return EVENTS, key, encode(msgspec.structs.replace(event, event_name=UNKNOWN_EVENT_NAME))
        # OVERSIZED: padding sized so the encoded record is exactly max_record_bytes + 1.
        base = len(encode(msgspec.structs.replace(exposure, attributes={"padding": ""})))
        padding = "x" * (self.max_record_bytes + 1 - base)
        return EXPOSURES, key, encode(msgspec.structs.replace(exposure, attributes={"padding": padding}))

    def _exposure(self, record_id: str, unit_id: str, at: datetime) -> Exposure:
        spec = self.experiments[0] if self.experiments else None
        return Exposure(
            exposure_id=record_id,
            unit_id=unit_id,
            hash_attribute=spec.hash_attribute if spec else "id",
            experiment_key=spec.key if spec else UNKNOWN_EXPERIMENT_KEY,
            variation_id=0,
            variation_key=spec.variations[0].key if spec else "0",
            feature_key=spec.feature_key if spec else None,
            source=ExposureSource.LOADGEN,
            exposed_at=at,
            sent_at=at + timedelta(milliseconds=1),
        )
