"""Arrow schemas of the table-bound records and fast columnar converters (records → pyarrow.Table).

One Arrow schema per ClickHouse table; the column names, order and types are the contract that
``tests/integration/test_schema_tables.py`` checks against sql/migrations/:

=====================  ==================================  ==============================
Arrow                  ClickHouse                          record field
=====================  ==================================  ==============================
string (not null)      String / LowCardinality(String)     str, StrEnum
string (nullable)      Nullable(String)                    str | None
binary                 String (raw bytes)                  bytes
uint16 / int32 / int64 UInt16 / Int32 / Int64              int
float64                Float64                             float
bool                   Bool                                bool
timestamp[ms, UTC]     DateTime64(3, 'UTC')                datetime (UTC-aware)
map<string, string>    Map(String, String)                 dict[str, str]
=====================  ==================================  ==============================

Columns the table fills by itself (``ingested_at DEFAULT now64(3)`` and enrichment columns of the
stream, e.g. ``variation_name``) are listed in :attr:`TableBinding.defaulted_columns`, not in the Arrow
schema: inserts name their columns, so the defaults apply.

Reading back: ClickHouse returns ``String`` as Arrow ``string``; for the byte columns of
``xp.dead_letters`` (``original``, ``original_key``) cast to ``binary`` before reading values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, Protocol

import msgspec
import numpy as np
import pyarrow as pa

from schemas.records import DeadLetter, Exposure, MetricEvent, RegistryRecord

__all__ = [
    "DEAD_LETTERS_SCHEMA",
    "EVENTS_SCHEMA",
    "EXPOSURES_SCHEMA",
    "REGISTRY_SCHEMA",
    "TABLES",
    "TIMESTAMP",
    "TableBinding",
    "binding_for",
    "clickhouse_type",
    "to_arrow",
]

TIMESTAMP: Final = pa.timestamp("ms", tz="UTC")
_STRING_MAP: Final = pa.map_(pa.string(), pa.string())


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


def _optional(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=True)


EXPOSURES_SCHEMA: Final = pa.schema(
    [
        _required("exposure_id", pa.string()),
        _required("unit_id", pa.string()),
        _required("hash_attribute", pa.string()),
        _required("experiment_key", pa.string()),
        _required("variation_id", pa.uint16()),
        _required("variation_key", pa.string()),
        _optional("feature_key", pa.string()),
        _optional("bucket", pa.float64()),
        _required("overridden", pa.bool_()),
        _required("source", pa.string()),
        _required("attributes", _STRING_MAP),
        _optional("user_agent", pa.string()),
        _required("exposed_at", TIMESTAMP),
        _optional("sent_at", TIMESTAMP),
        _required("schema_version", pa.uint16()),
    ]
)

EVENTS_SCHEMA: Final = pa.schema(
    [
        _required("event_id", pa.string()),
        _required("unit_id", pa.string()),
        _required("event_name", pa.string()),
        _optional("value", pa.float64()),
        _required("properties", _STRING_MAP),
        _required("occurred_at", TIMESTAMP),
        _optional("sent_at", TIMESTAMP),
        _required("schema_version", pa.uint16()),
    ]
)

DEAD_LETTERS_SCHEMA: Final = pa.schema(
    [
        _required("dead_letter_id", pa.string()),
        _required("reason", pa.string()),
        _required("detail", pa.string()),
        _required("record_kind", pa.string()),
        _required("source_topic", pa.string()),
        _optional("source_partition", pa.int32()),
        _optional("source_offset", pa.int64()),
        _optional("original_key", pa.binary()),
        _required("original", pa.binary()),
        _required("received_at", TIMESTAMP),
        _required("schema_version", pa.uint16()),
        _required("original_size", pa.int64()),
        _required("original_sha256", pa.string()),
    ]
)

REGISTRY_SCHEMA: Final = pa.schema(
    [
        _required("record_id", pa.string()),
        _required("kind", pa.string()),
        _required("key", pa.string()),
        _required("change", pa.string()),
        _required("changed_by", pa.string()),
        _required("changed_at", TIMESTAMP),
        _optional("payload", pa.string()),  # the payload as compact JSON text
        _required("schema_version", pa.uint16()),
    ]
)


@dataclass(frozen=True)
class TableBinding:
    """How one record type lands in one ClickHouse table."""

    table: str
    """``database.table`` in ClickHouse."""
    record_type: type
    schema: pa.Schema
    defaulted_columns: tuple[str, ...]
    """Table columns not in ``schema``: filled by a DEFAULT (ingestion time, later enrichment)."""
    sort_key: tuple[str, ...]
    """The table's ORDER BY, for readers that want to know what is cheap to filter on."""


TABLES: Final[dict[type, TableBinding]] = {
    binding.record_type: binding
    for binding in (
        TableBinding(
            "xp.exposures",
            Exposure,
            EXPOSURES_SCHEMA,
            ("variation_name", "ingested_at"),
            ("experiment_key", "unit_id", "exposed_at", "exposure_id"),
        ),
        TableBinding(
            "xp.events",
            MetricEvent,
            EVENTS_SCHEMA,
            ("ingested_at",),
            ("event_name", "unit_id", "occurred_at", "event_id"),
        ),
        TableBinding(
            "xp.dead_letters",
            DeadLetter,
            DEAD_LETTERS_SCHEMA,
            ("ingested_at",),
            ("source_topic", "reason", "received_at", "dead_letter_id"),
        ),
        TableBinding(
            "xp.registry",
            RegistryRecord,
            REGISTRY_SCHEMA,
            ("ingested_at",),
            ("kind", "key", "changed_at", "record_id"),
        ),
    )
}


def binding_for(record_type: type) -> TableBinding:
    """The table binding of a record type; KeyError names the types that have one."""
    try:
        return TABLES[record_type]
    except KeyError:
        known = ", ".join(t.__name__ for t in TABLES)
        raise KeyError(f"{record_type.__name__} is not table-bound (known: {known})") from None


_encode_json = msgspec.json.Encoder().encode


def _payload_json(records: Sequence[Any]) -> list[str | None]:
    return [None if r.payload is None else _encode_json(r.payload).decode() for r in records]


_COLUMN_OVERRIDES: Final[dict[tuple[type, str], Callable[[Sequence[Any]], list[Any]]]] = {
    (RegistryRecord, "payload"): _payload_json,
}


class FieldSource(Protocol):
    """Each field's values as a list, by field name (``pipelines.field_lists.FieldLists``, a dict)."""

    def __getitem__(self, name: str, /) -> list[Any]: ...


def _column(
    records: Sequence[Any], record_type: type, field: pa.Field, fields: FieldSource | None = None
) -> pa.Array:
    override = _COLUMN_OVERRIDES.get((record_type, field.name))
    if override:
        values = override(records)
    elif fields is not None:
        values = fields[field.name]
    else:
        values = list(map(attrgetter(field.name), records))
    if field.type == TIMESTAMP:
        return _timestamp_array(values)
    if field.type == _STRING_MAP and values and values.count({}) == len(values):
        return _empty_maps(len(values))  # the common case (no attributes), ~20x faster than converting
    return pa.array(values, field.type)


def _empty_maps(count: int) -> pa.Array:
    """``count`` empty map<string, string> values: equal to ``pa.array([{}] * count, _STRING_MAP)``."""
    empty = pa.array([], pa.string())
    return pa.MapArray.from_arrays(pa.array(np.zeros(count + 1, np.int32)), empty, empty, type=_STRING_MAP)


def _timestamp_array(values: list[datetime | None]) -> pa.Array:
    """UTC datetimes → timestamp[ms, UTC], ~2-7x faster than letting pyarrow convert datetimes.

    Exact: records hold UTC times truncated to ms (schemas.records.utc_ms), and a float64 of POSIX
    seconds resolves a millisecond over DateTime64's whole range, so rounding ×1000 recovers it.
    """
    count = len(values)
    if None in values:
        if values.count(None) == count:
            return pa.nulls(count, TIMESTAMP)  # e.g. an optional ``sent_at`` nobody sets
        mask = np.fromiter((value is None for value in values), np.bool_, count)
        seconds = np.fromiter((0.0 if v is None else v.timestamp() for v in values), np.float64, count)
        return pa.array(np.rint(seconds * 1000.0).astype(np.int64), TIMESTAMP, mask=mask)
    seconds = np.fromiter([value.timestamp() for value in values], np.float64, count)  # type: ignore[union-attr]
    return pa.array(np.rint(seconds * 1000.0).astype(np.int64), TIMESTAMP)


def to_arrow(
    records: Sequence[Any],
    record_type: type | None = None,
    *,
    columns: Mapping[str, pa.Array] | None = None,
    fields: FieldSource | None = None,
) -> pa.Table:
    """A pyarrow Table of ``records`` (all of one type) with the schema of their table.

    ``record_type`` is needed only when ``records`` may be empty. ``columns``: arrays the caller already
    holds for some fields (same values, same order, the schema's type), used instead of converting them.
    ``fields``: each field's values as a list, aligned with ``records`` (``pipelines.field_lists``: read
    once per batch, shared with other stages), used instead of reading the records again.
    """
    if record_type is None:
        if not records:
            raise ValueError("to_arrow() of an empty sequence needs record_type")
        record_type = type(records[0])
    binding = binding_for(record_type)
    if not set(map(type, records)) <= {record_type}:  # exact types, checked without a frame per record
        raise TypeError(f"to_arrow() expects only {record_type.__name__} records")
    given = columns or {}
    arrays = [
        given[field.name] if field.name in given else _column(records, record_type, field, fields)
        for field in binding.schema
    ]
    return pa.Table.from_arrays(arrays, schema=binding.schema)


def clickhouse_type(field: pa.Field) -> str:
    """The ClickHouse column type that holds ``field`` (without LowCardinality, an encoding choice)."""
    base = _CLICKHOUSE_TYPES.get(field.type)
    if base is None:
        raise TypeError(f"no ClickHouse mapping for Arrow type {field.type} (column {field.name})")
    return f"Nullable({base})" if field.nullable else base


_CLICKHOUSE_TYPES: Final[dict[pa.DataType, str]] = {
    pa.string(): "String",
    pa.binary(): "String",
    pa.bool_(): "Bool",
    pa.uint16(): "UInt16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.float64(): "Float64",
    TIMESTAMP: "DateTime64(3, 'UTC')",
    _STRING_MAP: "Map(String, String)",
}
