"""Rows of ``xp.attributed_events`` as Arrow tables: from attributions, from the columnar join's arrays,
from held events (the kernel's output builders; no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.attribution import Attribution
from schemas.arrow import TIMESTAMP

if TYPE_CHECKING:
    from pipelines.attribution import AttributedArrays, EventAttributions, HeldArrays

__all__ = ["ATTRIBUTED_EVENTS_SCHEMA", "attributions_table", "timestamps"]

ATTRIBUTED_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("experiment_key", pa.string(), nullable=False),
        pa.field("variation_id", pa.uint16(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=True),
        pa.field("occurred_at", TIMESTAMP, nullable=False),
        pa.field("first_exposed_at", TIMESTAMP, nullable=False),
    ]
)
"""Columns of ``xp.attributed_events`` the stream writes (``attributed_at`` is the table's default)."""


def timestamps(values: Sequence[datetime]) -> pa.Array:
    """Aware datetimes → timestamp[ms, UTC] of ``round(value.timestamp() * 1000)`` each (the same float64
    product, rounded half-even), without a Python int per value. Built straight from int64 (no
    ``cast``, which would load ``pyarrow.compute``, and pandas with it, into the first batch)."""
    seconds = np.fromiter(map(datetime.timestamp, values), np.float64, len(values))
    return pa.array(np.rint(seconds * 1000.0).astype(np.int64), TIMESTAMP)


_FROM_EVENT = ("event_id", "unit_id", "event_name", "value", "occurred_at")


def attributions_of_events(events: pa.Table, columns: EventAttributions) -> pa.Table:
    """Rows of ``xp.attributed_events`` for new events: the event's columns taken from its Arrow table
    (one ``take``, no Python object per cell), the experiment's from ``columns``."""
    taken = events.select(list(_FROM_EVENT)).take(pa.array(columns.positions, pa.int64()))
    arrays = {name: taken.column(name) for name in _FROM_EVENT}
    arrays["experiment_key"] = pa.chunked_array([pa.array(columns.experiment_keys, pa.string())])
    arrays["variation_id"] = pa.chunked_array([pa.array(columns.variation_ids, pa.uint16())])
    arrays["first_exposed_at"] = pa.chunked_array([timestamps(columns.first_exposed_at)])
    return pa.Table.from_arrays(
        [arrays[name] for name in ATTRIBUTED_EVENTS_SCHEMA.names], schema=ATTRIBUTED_EVENTS_SCHEMA
    )


def attributions_of_arrays(events: pa.Table, columns: AttributedArrays) -> pa.Table:
    """:func:`attributions_of_events` from the join's numpy columns: no Python object per row."""
    taken = events.select(list(_FROM_EVENT)).take(pa.array(columns.positions, pa.int64()))
    arrays = {name: taken.column(name) for name in _FROM_EVENT}
    keys = pa.array(columns.experiment_keys, pa.string()).take(pa.array(columns.experiment_codes, pa.int64()))
    arrays["experiment_key"] = pa.chunked_array([keys])
    arrays["variation_id"] = pa.chunked_array(
        [pa.array(columns.variation_ids.astype(np.uint16), pa.uint16())]
    )
    arrays["first_exposed_at"] = pa.chunked_array([pa.array(columns.first_exposed_ms, TIMESTAMP)])
    return pa.Table.from_arrays(
        [arrays[name] for name in ATTRIBUTED_EVENTS_SCHEMA.names], schema=ATTRIBUTED_EVENTS_SCHEMA
    )


def attributions_of_held(held: HeldArrays) -> pa.Table:
    """Rows of ``xp.attributed_events`` for held events from :class:`HeldArrays` (one ``take`` per column
    of the held events, no Python object per row): the same table as :func:`attributions_table` of the
    walk's rows."""
    positions = pa.array(held.positions, pa.int64())
    keys = pa.array(held.experiment_keys, pa.string()).take(pa.array(held.experiment_codes, pa.int64()))
    arrays = [
        pa.array(held.event_ids, pa.string()).take(positions),
        pa.array(held.unit_ids, pa.string()).take(positions),
        keys,
        pa.array(held.variation_ids.astype(np.uint16), pa.uint16()),
        pa.array(held.event_names, pa.string()).take(positions),
        pa.array(held.values, pa.float64()).take(positions),
        pa.array(held.occurred_ms[held.positions], TIMESTAMP),
        pa.array(held.first_exposed_ms, TIMESTAMP),
    ]
    return pa.Table.from_arrays(arrays, schema=ATTRIBUTED_EVENTS_SCHEMA)


def attributions_table(attributions: Sequence[Attribution]) -> pa.Table:
    """Rows of ``xp.attributed_events``."""
    if attributions:
        columns: list[Sequence[Any]] = list(zip(*attributions, strict=True))
    else:
        columns = [()] * len(ATTRIBUTED_EVENTS_SCHEMA)
    arrays = []
    # Attribution's fields are the schema's columns, in the same order.
    for f, values in zip(ATTRIBUTED_EVENTS_SCHEMA, columns, strict=True):
        if f.type == TIMESTAMP:
            arrays.append(timestamps(values))
        else:
            arrays.append(pa.array(list(values), f.type))
    return pa.Table.from_arrays(arrays, schema=ATTRIBUTED_EVENTS_SCHEMA)


assert tuple(ATTRIBUTED_EVENTS_SCHEMA.names) == Attribution._fields, "attributions_table relies on it"
