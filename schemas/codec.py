"""Kafka encoding of the records: compact JSON, UTF-8, at most ``max_record_bytes`` per record.

Decoding never raises anything but :class:`RecordError`, whatever the bytes: each failure carries a
:class:`~schemas.records.DeadLetterReason` code and a human-readable detail, ready for a dead letter
(:func:`make_dead_letter`). The bulk path (:meth:`RecordCodec.decode_many`) splits a batch into oks and
errors instead of raising, so one bad record never stops a batch.

::

    codec = RecordCodec(Exposure, max_record_bytes=settings.max_record_bytes)
    data = codec.encode(exposure)                 # bytes for the Kafka value, key = exposure.unit_id
    batch = codec.decode_many(values)             # DecodedBatch(oks, ok_positions, failures)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

import msgspec

from schemas.records import (
    DeadLetter,
    DeadLetterReason,
    Exposure,
    MetricEvent,
    RecordKind,
    RegistryRecord,
)
from xpstream.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DecodedBatch",
    "RecordCodec",
    "RecordError",
    "make_dead_letter",
    "record_kind_of",
]

DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000
"""Default size limit of one encoded record; the running value is ``KafkaSettings.max_record_bytes``."""

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


class RecordCodec(Generic[Record]):
    """Encoder and decoder of one record type, with the size limit applied both ways."""

    def __init__(
        self, record_type: type[Record], *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self.record_type: type[Record] = record_type
        self.record_kind = record_kind_of(record_type)
        self.max_record_bytes = max_record_bytes
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
            return self._decoder.decode(data)
        except RecordError:
            raise
        except msgspec.ValidationError as exc:
            message = str(exc)
            raise RecordError(_classify_validation(message), message) from None
        except msgspec.DecodeError as exc:
            assert data is not None
            if not _is_utf8(data):
                raise RecordError(DeadLetterReason.INVALID_UTF8, f"not valid UTF-8 ({exc})") from None
            raise RecordError(DeadLetterReason.INVALID_JSON, str(exc)) from None
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
            return DecodedBatch(oks, ok_positions, failures)
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
        return DecodedBatch(oks, ok_positions, failures)


def make_dead_letter(
    error: RecordError,
    original: bytes | bytearray | memoryview | None,
    *,
    record_kind: RecordKind,
    source_topic: str,
    source_partition: int | None = None,
    source_offset: int | None = None,
    original_key: bytes | None = None,
    received_at: datetime | None = None,
) -> DeadLetter:
    """The dead letter for a rejected value.

    Its id is derived from topic/partition/offset when known, so re-processing the same Kafka record
    yields the same ``dead_letter_id`` (deduplicable); otherwise it is random.
    """
    if source_partition is not None and source_offset is not None:
        name = f"{source_topic}/{source_partition}/{source_offset}"
        dead_letter_id = str(uuid.uuid5(_DEAD_LETTER_NAMESPACE, name))
    else:
        dead_letter_id = str(uuid.uuid4())
    return DeadLetter(
        dead_letter_id=dead_letter_id,
        reason=error.reason,
        detail=error.detail,
        record_kind=record_kind,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        original_key=original_key,
        original=b"" if original is None else bytes(original),
        received_at=received_at or datetime.now(UTC),
    )
