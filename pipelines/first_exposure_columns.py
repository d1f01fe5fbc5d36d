"""The first exposures of :class:`~pipelines.attribution.AttributionState` as columns, for a batch join.

Attribution asks, for every new event, "which experiments was this unit first exposed to before the
event, within the window?". Record by record that is a dict walk per event (the kernel's largest cost,
docs/benchmarks.md). Here the same state is also kept as numpy columns, one row per (unit, experiment)
**pair**: the unit's code, the experiment's code, the first exposure in exact epoch microseconds and its
variation. A batch of events then becomes one join (:meth:`FirstExposureColumns.candidates`: every
(event, pair) of the event's unit, in the unit's insertion order) and two integer comparisons over whole
arrays (docs/decisions/0076).

The columns mirror the dict state and are updated at the same places (``AttributionState``'s methods,
the only writers of its ``units``). Times are compared as integers: exact for any aware datetime in the
storable range; a state time outside it, naive or not whole milliseconds (decoded and restored times are)
marks the columns :attr:`exotic` and attribution falls back to the per-record walk, which stays the
reference implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipelines.attribution import UnitExposure

__all__ = [
    "MAX_FAST_WINDOW",
    "FirstExposureColumns",
    "attributed_tuples",
    "epoch_us",
    "window_limits",
    "windows_in_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_LOW = datetime(1900, 1, 1, tzinfo=UTC)
_HIGH = datetime(2300, 1, 1, tzinfo=UTC)

MAX_FAST_WINDOW = timedelta(days=365 * 300)
"""Windows longer than this (either sign) are left to the per-record walk: ``first + window`` must stay
inside datetime's range there for the integer comparison to reach the same verdict (first exposures
lie in [1900, 2300), so ±300 years never leaves [1, 9999])."""


def epoch_us(at: datetime) -> int:
    """An aware datetime as exact integer microseconds since the epoch."""
    return (at - _EPOCH) // _US


class FirstExposureColumns:
    """(unit, experiment) pairs as numpy columns, with a unit-sorted index for the batch join."""

    def __init__(self) -> None:
        self.unit_codes: dict[str, int] = {}
        self.experiment_codes: dict[str, int] = {}
        self.experiment_keys: list[str] = []
        self.states: list[UnitExposure] = []
        """Pair → its state object (the dict state's, shared)."""
        self.count = 0
        self.exotic = False
        """A first exposure outside [1900, 2300), naive or with sub-ms digits was stored: not used."""
        capacity = 1024
        self._unit = np.empty(capacity, np.int64)
        self.experiment = np.empty(capacity, np.int64)
        self.first_us = np.empty(capacity, np.int64)
        self.variation = np.empty(capacity, np.int64)
        self._sorted_units = np.empty(0, np.int64)
        self._order = np.empty(0, np.int64)
        """Pair indices sorted by unit code, then by pair index (= the unit's insertion order)."""
        self._pending: list[int] = []
        """Pairs added since the index was last merged."""

    def add(self, unit_id: str, experiment_key: str, state: UnitExposure) -> int:
        """A new pair (appended: a unit's pairs stay in insertion order); returns its index."""
        pair = self.count
        if pair == len(self._unit):
            size = 2 * pair
            self._unit = np.resize(self._unit, size)
            self.experiment = np.resize(self.experiment, size)
            self.first_us = np.resize(self.first_us, size)
            self.variation = np.resize(self.variation, size)
        unit = self.unit_codes.get(unit_id)
        if unit is None:
            unit = self.unit_codes[unit_id] = len(self.unit_codes)
        experiment = self.experiment_codes.get(experiment_key)
        if experiment is None:
            experiment = self.experiment_codes[experiment_key] = len(self.experiment_keys)
            self.experiment_keys.append(experiment_key)
        self._unit[pair] = unit
        self.experiment[pair] = experiment
        self.states.append(state)
        self.count += 1
        self._pending.append(pair)
        self.update(pair, state)
        return pair

    def add_many(self, new: Sequence[tuple[str, str, UnitExposure]]) -> None:
        """:meth:`add` of each (unit_id, experiment_key, state), in order; sets each state's ``pair``."""
        start = self.count
        end = start + len(new)
        if end > len(self._unit):
            size = max(2 * len(self._unit), end)
            self._unit = np.resize(self._unit, size)
            self.experiment = np.resize(self.experiment, size)
            self.first_us = np.resize(self.first_us, size)
            self.variation = np.resize(self.variation, size)
        unit_codes, experiment_codes = self.unit_codes, self.experiment_codes
        units: list[int] = []
        experiments: list[int] = []
        firsts: list[int] = []
        variations: list[int] = []
        for pair, (unit_id, experiment_key, state) in enumerate(new, start):
            unit = unit_codes.get(unit_id)
            if unit is None:
                unit = unit_codes[unit_id] = len(unit_codes)
            experiment = experiment_codes.get(experiment_key)
            if experiment is None:
                experiment = experiment_codes[experiment_key] = len(self.experiment_keys)
                self.experiment_keys.append(experiment_key)
            units.append(unit)
            experiments.append(experiment)
            state.pair = pair
            first = state.first_exposed_at
            if first.tzinfo is None or not _LOW <= first < _HIGH or first.microsecond % 1000:
                self.exotic = True
                firsts.append(0)
            else:
                firsts.append((first - _EPOCH) // _US)
            variations.append(state.variation_id)
        self._unit[start:end] = units
        self.experiment[start:end] = experiments
        self.first_us[start:end] = firsts
        self.variation[start:end] = variations
        self.states.extend(state for _, _, state in new)
        self._pending.extend(range(start, end))
        self.count = end

    def update(self, pair: int, state: UnitExposure) -> None:
        """The pair's state object, first exposure or variation changed."""
        self.states[pair] = state
        first = state.first_exposed_at
        if first.tzinfo is None or not _LOW <= first < _HIGH or first.microsecond % 1000:
            self.exotic = True
            return
        self.first_us[pair] = epoch_us(first)
        self.variation[pair] = state.variation_id

    def candidates(self, unit_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every (event position, pair) of the events' units: positions ascending, each event's pairs in
        its unit's insertion order (as the per-record walk visits them)."""
        codes = np.fromiter(map(self.unit_codes.get, unit_ids, repeat(-1)), np.int64, len(unit_ids))
        return self.candidates_of_codes(codes)

    def candidates_of_codes(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`candidates` of events given by their units' codes (-1: a unit without pairs)."""
        self._merge_pending()
        count = len(codes)
        sorted_units = self._sorted_units
        low = np.searchsorted(sorted_units, codes, "left")
        sizes = np.searchsorted(sorted_units, codes, "right") - low
        positions = np.repeat(np.arange(count, dtype=np.int64), sizes)
        # Index into the sorted order: each event's run starts at its ``low``.
        ends = np.cumsum(sizes)
        slots = np.arange(len(positions), dtype=np.int64) + np.repeat(low - (ends - sizes), sizes)
        return positions, self._order[slots]

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        new = np.array(self._pending, np.int64)
        self._pending = []
        new_units = self._unit[new]
        ranked = np.argsort(new_units, kind="stable")
        new, new_units = new[ranked], new_units[ranked]
        # New pairs have the highest indices: after the unit's existing ones ("right").
        at = np.searchsorted(self._sorted_units, new_units, "right")
        self._order = np.insert(self._order, at, new)
        self._sorted_units = np.insert(self._sorted_units, at, new_units)


def windows_in_us(
    default: timedelta | None, windows: Mapping[tuple[str, str], timedelta | None]
) -> tuple[int | None, dict[tuple[str, str], int | None]] | None:
    """The default window and the per-(experiment, event) windows in microseconds (None: no end), or
    None when one of them is longer than :data:`MAX_FAST_WINDOW` (the per-record walk decides then)."""

    def micros(window: timedelta | None) -> int | None:
        if window is None:
            return None
        if abs(window) > MAX_FAST_WINDOW:
            raise OverflowError
        return window // _US

    try:
        return micros(default), {key: micros(w) for key, w in windows.items()}
    except OverflowError:
        return None


def window_limits(
    columns: FirstExposureColumns,
    names: Sequence[str],
    default_us: int | None,
    windows_us: Mapping[tuple[str, str], int | None],
    positions: np.ndarray,
    pairs: np.ndarray,
) -> np.ndarray:
    """Per candidate row (event ``positions`` into ``names``, ``pairs``), the window of its experiment and
    event name in microseconds (no end: int64 max), from a small table built for this batch."""
    name_codes = {name: code for code, name in enumerate(dict.fromkeys(names))}
    no_end = np.iinfo(np.int64).max
    fill = no_end if default_us is None else default_us
    table = np.full((len(columns.experiment_keys), len(name_codes)), fill, np.int64)
    experiment_codes = columns.experiment_codes
    for (experiment_key, name), window in windows_us.items():
        row, column = experiment_codes.get(experiment_key), name_codes.get(name)
        if row is not None and column is not None:
            table[row, column] = no_end if window is None else window
    event_names = np.fromiter(map(name_codes.__getitem__, names), np.int64, len(names))
    limits: np.ndarray = table[columns.experiment[pairs], event_names[positions]]
    return limits


def attributed_tuples(
    count: int, positions: np.ndarray, codes: np.ndarray, keys: list[str]
) -> list[tuple[str, ...]]:
    """Per event, the experiment keys it was attributed to, in row order (``()`` for none), from the
    join's rows (``positions`` ascending, ``codes`` into ``keys``): one shared tuple per distinct
    sequence of experiments, found column-wise."""
    attributed: list[tuple[str, ...]] = [()] * count
    if not len(positions):
        return attributed
    sizes = np.bincount(positions, minlength=count)
    base = len(keys) + 1
    if int(sizes.max()) * base.bit_length() > 62:  # the sequence code would not fit in int64
        for position, key in zip(positions.tolist(), map(keys.__getitem__, codes.tolist()), strict=True):
            attributed[position] = (*attributed[position], key)
        return attributed
    # A sequence's code: sum of (code + 1) * base ** rank within the event.
    having = np.flatnonzero(sizes)
    starts = np.cumsum(sizes[having]) - sizes[having]
    ranks = np.arange(len(positions), dtype=np.int64) - np.repeat(starts, sizes[having])
    digits = (codes + 1) * np.power(np.int64(base), ranks)
    sequence = np.add.reduceat(digits, starts)
    distinct, which = np.unique(sequence, return_inverse=True)
    tuples = np.empty(len(distinct), object)
    for index, code in enumerate(distinct.tolist()):
        found: list[str] = []
        while code:
            code, digit = divmod(code, base)
            found.append(keys[digit - 1])
        tuples[index] = tuple(found)
    column = np.empty(count, object)
    column.fill(())
    column[having] = tuples[which]
    result: list[tuple[str, ...]] = column.tolist()
    return result
