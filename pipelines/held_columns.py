"""Held events attributed by a batch's exposures as one join (docs/decisions/0097).

An event that arrives before its unit's exposure is *held* (:class:`~pipelines.attribution.AttributionState`);
when a batch's exposures give units a (new or earlier) first exposure, every held event of those units is
examined again. Record by record that was a walk per held event and experiment, and a Python tuple per
attributed row turned back into Arrow columns: on issue #22's workload (exposures and events read from
different topics, so most events wait for their exposure) the largest part of the kernel.

Here the held events of the changed units are gathered once (their tuples unzipped into columns, their
times converted by Arrow, exactly), joined with the first exposures kept as columns
(:meth:`~pipelines.first_exposure_columns.FirstExposureColumns.candidates_of_codes`) and filtered by the
same integer comparisons as the new events' join (:func:`~pipelines.first_exposure_columns.window_limits`),
minus the experiments each held event is attributed to already. The rows come out in the walk's order
(units sorted, each unit's held events in holding order, each event's experiments in the unit's order) as
columns (:class:`HeldArrays`). The held tuples are updated in place with the experiments they gained, as
the walk does. ``None`` when the join cannot decide exactly (a held time that is not whole milliseconds
or outside [1900, 2300)): then the caller walks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa

from pipelines.first_exposure_columns import attributed_tuples, window_limits

if TYPE_CHECKING:
    from datetime import datetime

    from pipelines.first_exposure_columns import FirstExposureColumns

__all__ = ["HeldArrays", "HeldEntry", "attribute_held_joined"]

HeldEntry = tuple[str, str, float | None, "datetime", tuple[str, ...]]
"""A held event: (event_id, event_name, value, occurred_at, experiments it is attributed to).

A plain tuple of atomic values (not a struct, not a set): the garbage collector stops tracking it after
its first pass, so hundreds of thousands of held events cost the collector nothing (they used to be
three tracked objects each, and full collections over them dominated the kernel's time)."""

_LOW_US = -2_208_988_800_000_000  # 1900-01-01 UTC
_HIGH_US = 10_413_792_000_000_000  # 2300-01-01 UTC
_US_UTC = pa.timestamp("us", tz="UTC")


class HeldArrays(NamedTuple):
    """Attributions of held events as columns: per held event examined (``event_ids`` … ``occurred_ms``)
    and per row (``positions`` into those, then the experiment's columns)."""

    event_ids: list[str]
    unit_ids: list[str]
    event_names: list[str]
    values: list[float | None]
    occurred_ms: np.ndarray
    positions: np.ndarray
    experiment_codes: np.ndarray
    experiment_keys: list[str]
    variation_ids: np.ndarray
    first_exposed_ms: np.ndarray


def attribute_held_joined(
    held: Mapping[str, list[HeldEntry]],
    units: Sequence[str],
    columns: FirstExposureColumns,
    default_us: int | None,
    windows_us: Mapping[tuple[str, str], int | None],
) -> HeldArrays | None:
    """Attribute the held events of ``units`` (sorted, each with held events) to the experiments they are
    not attributed to yet; update their tuples in ``held``. None, with nothing changed, when not exact."""
    lists = [held[unit] for unit in units]
    sizes = np.fromiter(map(len, lists), np.int64, len(lists))
    flat = [entry for entries in lists for entry in entries]
    count = len(flat)
    event_ids, names, values, occurred, attributed = (list(column) for column in zip(*flat, strict=True))
    occurred_us = pa.array(occurred, _US_UTC).to_numpy(zero_copy_only=False).view(np.int64)
    if int(occurred_us.min()) < _LOW_US or int(occurred_us.max()) >= _HIGH_US or np.any(occurred_us % 1000):
        return None
    unit_codes = np.fromiter(map(columns.unit_codes.__getitem__, units), np.int64, len(units))
    positions, pairs = columns.candidates_of_codes(np.repeat(unit_codes, sizes))
    since = occurred_us[positions] - columns.first_us[pairs]
    kept = since >= 0
    kept &= since <= window_limits(columns, names, default_us, windows_us, positions, pairs)
    if any(attributed):  # experiments a held event has already: not again
        kept &= ~_already(attributed, columns, positions, pairs)
    positions, pairs = positions[kept], pairs[kept]
    experiment_codes = columns.experiment[pairs]
    keys = list(columns.experiment_keys)
    if len(positions):
        gained = attributed_tuples(count, positions, experiment_codes, keys)
        updated = [
            (entry[0], entry[1], entry[2], entry[3], entry[4] + more) if more else entry
            for entry, more in zip(flat, gained, strict=True)
        ]
        start = 0
        for entries, size in zip(lists, sizes.tolist(), strict=True):
            entries[:] = updated[start : start + size]
            start += size
    unit_ids = np.repeat(np.array(units, object), sizes).tolist()
    return HeldArrays(
        event_ids,
        unit_ids,
        names,
        values,
        occurred_us // 1000,
        positions,
        experiment_codes,
        keys,
        columns.variation[pairs],
        columns.first_us[pairs] // 1000,
    )


def _already(
    attributed: list[tuple[str, ...]], columns: FirstExposureColumns, positions: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """Per candidate row, whether its held event is attributed to the row's experiment already."""
    distinct = {sequence: code for code, sequence in enumerate(dict.fromkeys(attributed))}
    having = np.zeros((len(distinct), len(columns.experiment_keys)), np.bool_)
    codes = columns.experiment_codes
    for sequence, row in distinct.items():
        for key in sequence:
            column = codes.get(key)
            if column is not None:
                having[row, column] = True
    which = np.fromiter(map(distinct.__getitem__, attributed), np.int64, len(attributed))
    found: np.ndarray = having[which[positions], columns.experiment[pairs]]
    return found
