"""Kafka encoding of the records: compact JSON, UTF-8, at most ``max_record_bytes`` per record.

Decoding never raises anything but :class:`RecordError`, whatever the bytes: each failure carries a
:class:`~schemas.records.DeadLetterReason` code and a human-readable detail, ready for a dead letter
(:func:`make_dead_letter`). The bulk path (:meth:`RecordCodec.decode_many`) splits a batch into oks and
errors instead of raising, so one bad record never stops a batch.

::

    codec = RecordCodec(Exposure, max_record_bytes=settings.max_record_bytes)
    data = codec.encode(exposure)                 # bytes for the Kafka value, key = exposure.unit_id
    batch = codec.decode_many(values)             # DecodedBatch(oks, ok_positions, failures)

Beyond the schema, a :class:`~schemas.records.MetricEvent`'s ``value`` must be finite and at most
``max_abs_metric_value`` in magnitude (``XP_MAX_ABS_METRIC_VALUE``, docs/decisions/0034): the rule lives
here, once, so the stream kernel (every path) and the HTTP collector reach the same verdict for the same
bytes. ``NaN``/``Infinity`` literals and numbers beyond float64 (``1e999``) are ``value_not_finite``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import msgspec

from schemas.records import (
    DeadLetter,
    DeadLetterReason,
    Exposure,
    MetricEvent,
    RecordKind,
    RegistryRecord,
)
from xpcore.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_ABS_METRIC_VALUE",
    "DEFAULT_MAX_RECORD_BYTES",
    "TRUNCATED_ORIGINAL_BYTES",
    "DecodedBatch",
    "RecordCodec",
    "RecordError",
    "make_dead_letter",
    "record_kind_of",
]

DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000
"""Default size limit of one encoded record; the running value is ``KafkaSettings.max_record_bytes``."""

DEFAULT_MAX_ABS_METRIC_VALUE: Final = 1e15
"""Default bound on ``|value|`` of a metric event; the running value is ``XP_MAX_ABS_METRIC_VALUE``."""

TRUNCATED_ORIGINAL_BYTES: Final = 4096
"""Bytes of an over-limit original kept in its dead letter (with the whole one's size and SHA-256)."""

_DETAIL_MAX_CHARS: Final = 500
_DEAD_LETTER_NAMESPACE: Final = uuid.UUID("6f2b3c1e-8f7a-4d2b-9a51-0e3f4c5d6a7b")

Record = TypeVar("Record", Exposure, MetricEvent, DeadLetter, RegistryRecord)

_KIND_OF: Final[dict[type, RecordKind]] = {
    Exposure: RecordKind.EXPOSURE,
    MetricEvent: RecordKind.METRIC_EVENT,
    RegistryRecord: RecordKind.REGISTRY,
    DeadLetter: RecordKind.UNKNOWN,
}


class RecordError(ValidationError):
    """A record does not meet its contract; ``reason`` is the dead-letter code, ``detail`` says why."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail[:_DETAIL_MAX_CHARS] or reason.value
        super().__init__(f"{reason.value}: {self.detail}")

    def __reduce__(self) -> tuple[type[RecordError], tuple[DeadLetterReason, str]]:
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True, slots=True)
class DecodedBatch(Generic[Record]):
    """A decoded batch: the valid records and, separately, the rejected ones (by input position)."""

    oks: list[Record]
    ok_positions: list[int]
    """Position in the input of each record in ``oks``."""
    failures: list[tuple[int, RecordError]]
    """(position in the input, error) of each rejected value."""


def record_kind_of(record_type: type) -> RecordKind:
    """The :class:`RecordKind` a record type stands for."""
    return _KIND_OF.get(record_type, RecordKind.UNKNOWN)


def _classify_validation(message: str) -> DeadLetterReason:
    """Map a msgspec validation message to a reason code (messages are stable within msgspec 0.x)."""
    if message.startswith("Object missing required field") or "got `null`" in message:
        return DeadLetterReason.MISSING_FIELD
    if message.startswith("Number out of range"):  # a float literal beyond float64, e.g. 1e999
        return DeadLetterReason.VALUE_NOT_FINITE
    lowered = message.lower()
    if "datetime" in lowered or "timestamp" in lowered or "rfc3339" in lowered:
        return DeadLetterReason.BAD_TIMESTAMP
    return DeadLetterReason.SCHEMA_VIOLATION


def _is_utf8(data: bytes | bytearray | memoryview) -> bool:
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _non_finite_path(document: object, path: str = "$") -> str | None:
    """The path of the first NaN/±Infinity float in a parsed JSON document, or None."""
    stack: list[tuple[object, str]] = [(document, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                return where
        elif isinstance(node, dict):
            stack.extend((value, f"{where}.{key}") for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{i}]") for i, value in reversed(list(enumerate(node))))
    return None


def _non_finite_literal(data: bytes | bytearray | memoryview) -> str | None:
    """Where malformed-for-msgspec JSON holds a ``NaN``/``Infinity`` literal (strict JSON has none).

    Python's parser accepts those literals; when it reads the document and finds one, that literal is
    why the record was refused. Runs only for records that failed to decode (rare)."""
    raw = bytes(data)
    if b"NaN" not in raw and b"Infinity" not in raw:  # the only literals strict JSON lacks
        return None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    # Only inside an object: a bare ``NaN`` is no record at all (invalid_json).
    return _non_finite_path(document) if isinstance(document, dict) else None


def value_problem(value: float | None, max_abs: float) -> RecordError | None:
    """The coded error of a metric value that is not finite or beyond ``max_abs``; None when it is fine."""
    if value is None or -max_abs <= value <= max_abs:
        return None
    if not math.isfinite(value):
        return RecordError(DeadLetterReason.VALUE_NOT_FINITE, f"`value` is {value}, not a finite number")
    return RecordError(
        DeadLetterReason.VALUE_OUT_OF_RANGE,
        f"`value` {value!r} exceeds the allowed magnitude {max_abs:g} (XP_MAX_ABS_METRIC_VALUE)",
    )


class RecordCodec(Generic[Record]):
    """Encoder and decoder of one record type, with the size limit applied both ways."""

    def __init__(
        self,
        record_type: type[Record],
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_abs_metric_value: float = DEFAULT_MAX_ABS_METRIC_VALUE,
    ) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        if not 0 < max_abs_metric_value < math.inf:
            raise ValueError("max_abs_metric_value must be positive and finite")
        self.record_type: type[Record] = record_type
        self.record_kind = record_kind_of(record_type)
        self.max_record_bytes = max_record_bytes
        self.max_abs_metric_value = float(max_abs_metric_value)
        self._checks_values = record_type is MetricEvent
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[Record] = msgspec.json.Decoder(record_type)

    def encode(self, record: Record) -> bytes:
        """Compact JSON UTF-8 bytes of ``record``; RecordError(too_large) beyond the size limit."""
        data = self._encoder.encode(record)
        if len(data) > self.max_record_bytes:
            raise RecordError(
                DeadLetterReason.TOO_LARGE,
                f"encoded record is {len(data)} bytes, the limit is {self.max_record_bytes}",
            )
        return data

    def encode_many(self, records: Sequence[Record]) -> list[bytes]:
        """Encode each record (same rules as :meth:`encode`)."""
        return [self.encode(record) for record in records]

    def decode(self, data: bytes | bytearray | memoryview | None) -> Record:
        """Decode one Kafka value; raises only :class:`RecordError`."""
        try:
            if data is None:
                raise RecordError(DeadLetterReason.INVALID_JSON, "empty record: the message has no value")
            if len(data) > self.max_record_bytes:
                raise RecordError(
                    DeadLetterReason.TOO_LARGE,
                    f"record is {len(data)} bytes, the limit is {self.max_record_bytes}",
                )
            record = self._decoder.decode(data)
            if self._checks_values:
                problem = value_problem(_metric_value(record), self.max_abs_metric_value)
                if problem is not None:
                    raise problem
            return record
        except RecordError:
            raise
        except msgspec.ValidationError as exc:
            message = str(exc)
            raise RecordError(_classify_validation(message), message) from None
        except msgspec.DecodeError as exc:
            assert data is not None
            if not _is_utf8(data):
                raise RecordError(DeadLetterReason.INVALID_UTF8, f"not valid UTF-8 ({exc})") from None
            where = _non_finite_literal(data)
            if where is not None:
                raise RecordError(
                    DeadLetterReason.VALUE_NOT_FINITE, f"NaN or Infinity at `{where}` ({exc})"
                ) from None
            raise RecordError(DeadLetterReason.INVALID_JSON, str(exc)) from None
        except RecursionError:  # JSON nested deeper than the decoder follows (no record is that deep)
            raise RecordError(
                DeadLetterReason.SCHEMA_VIOLATION,
                "JSON nested too deeply: no record of this contract nests that far",
            ) from None
        except UnicodeDecodeError as exc:  # msgspec validates UTF-8 inside strings this way
            raise RecordError(DeadLetterReason.INVALID_UTF8, f"not valid UTF-8: {exc.reason}") from None
        except Exception as exc:  # a bug, never a crash: the record is dead-lettered with the cause
            raise RecordError(
                DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__} while decoding: {exc}"
            ) from exc

    def decode_many(self, values: Sequence[bytes | bytearray | memoryview | None]) -> DecodedBatch[Record]:
        """Decode a batch without raising: valid records in ``oks``, the rest in ``failures``."""
        decode = self._decoder.decode
        oks: list[Record] = []
        ok_positions: list[int] = []
        failures: list[tuple[int, RecordError]] = []
        try:
            fits = not values or max(map(len, values)) <= self.max_record_bytes  # type: ignore[arg-type]
        except TypeError:  # a None value (no bytes): every record through the careful loop
            fits = False
        if not fits:
            for position, data in enumerate(values):
                try:
                    oks.append(self.decode(data))
                    ok_positions.append(position)
                except RecordError as error:
                    failures.append((position, error))
            return DecodedBatch(oks, ok_positions, failures)  # decode() checked the values
        # Every value within the size limit: one tight loop per run of valid records; a value that fails
        # is classified by decode() (its coded error) and the loop resumes after it.
        append = oks.append
        count = len(values)
        start = 0
        while start < count:
            decoded_before = len(oks)
            try:
                for data in values[start:] if start else values:
                    append(decode(data))  # type: ignore[arg-type]  # no None: len() passed
            except Exception:
                failed = start + len(oks) - decoded_before
                ok_positions.extend(range(start, failed))
                try:
                    append(self.decode(values[failed]))  # a failure of the fast call only (never seen)
                    ok_positions.append(failed)
                except RecordError as error:
                    failures.append((failed, error))
                start = failed + 1
                continue
            ok_positions.extend(range(start, count))
            break
        if self._checks_values and oks:
            return self._check_values(DecodedBatch(oks, ok_positions, failures))
        return DecodedBatch(oks, ok_positions, failures)

    def _check_values(self, batch: DecodedBatch[Record]) -> DecodedBatch[Record]:
        """Metric values checked column-wise: the non-null values as one float64 array, compared with the
        bound at once (NaN and ±inf fail ``|v| <= bound``); only a batch holding a bad value is walked
        record by record for the coded errors (~0.04 µs per value otherwise)."""
        import numpy as np

        records: list[Any] = batch.oks  # MetricEvents (only their codec checks values)
        present = [value for value in [record.value for record in records] if value is not None]
        bound = self.max_abs_metric_value
        if not present or bool((np.abs(np.array(present, np.float64)) <= bound).all()):
            return batch
        bad: list[tuple[int, RecordError]] = []
        for index, record in enumerate(batch.oks):
            problem = value_problem(_metric_value(record), bound)
            if problem is not None:
                bad.append((index, problem))
        if not bad:
            return batch
        dropped = {index for index, _ in bad}
        oks = [record for i, record in enumerate(batch.oks) if i not in dropped]
        positions = [p for i, p in enumerate(batch.ok_positions) if i not in dropped]
        failures = batch.failures + [(batch.ok_positions[i], error) for i, error in bad]
        failures.sort(key=_first)
        return DecodedBatch(oks, positions, failures)


def _metric_value(record: Any) -> float | None:
    """A metric event's ``value`` (the codecs that call this decode MetricEvent)."""
    value: float | None = record.value
    return value


def _first(pair: tuple[int, RecordError]) -> int:
    return pair[0]


def make_dead_letter(
    error: RecordError,
    original: bytes | bytearray | memoryview | None,
    *,
    max_original_bytes: int | None = None,
    record_kind: RecordKind,
    source_topic: str,
    source_partition: int | None = None,
    source_offset: int | None = None,
    original_key: bytes | None = None,
    received_at: datetime | None = None,
) -> DeadLetter:
    """The dead letter for a rejected value.

    Its id is derived from topic/partition/offset when known, so re-processing the same Kafka record
    yields the same ``dead_letter_id`` (deduplicable); otherwise it is random. An original longer than
    ``max_original_bytes`` keeps only its first :data:`TRUNCATED_ORIGINAL_BYTES`; its whole size and
    SHA-256 are kept in ``original_size`` / ``original_sha256`` (docs/decisions/0035).
    """
    if source_partition is not None and source_offset is not None:
        name = f"{source_topic}/{source_partition}/{source_offset}"
        dead_letter_id = str(uuid.uuid5(_DEAD_LETTER_NAMESPACE, name))
    else:
        dead_letter_id = str(uuid.uuid4())
    whole = memoryview(b"" if original is None else original)
    size = whole.nbytes
    digest = hashlib.sha256(whole).hexdigest()
    if max_original_bytes is not None and size > max_original_bytes:
        kept = bytes(whole[:TRUNCATED_ORIGINAL_BYTES])
    else:
        kept = bytes(whole)
    return DeadLetter(
        dead_letter_id=dead_letter_id,
        reason=error.reason,
        detail=error.detail,
        record_kind=record_kind,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        original_key=original_key,
        original=kept,
        received_at=received_at or datetime.now(UTC),
        original_size=size,
        original_sha256=digest,
    )
