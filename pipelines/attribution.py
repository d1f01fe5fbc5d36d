"""Attribution of metric events to the unit's exposures: pure worker state, no Kafka, no warehouse.

Rule: an event ``e`` of unit ``u`` is attributed to experiment ``x`` when ``u``'s **first** exposure to
``x`` happened at ``f`` with ``f <= e.occurred_at <= f + window(x, e.event_name)``. The window is the
longest attribution window of ``x``'s metrics that count ``e.event_name`` (None: no end; the metric
catalog's defaults have none), else the configured default; shorter per-metric windows are applied
at analysis time from ``occurred_at - first_exposed_at``, which every attribution row carries. A row
carries the variation of that first exposure. A unit exposed to more than one variation of ``x`` is marked
(:attr:`UnitExposure.multiple_variations`); its events are still attributed, and analysis excludes it
(``xp.unit_exposures``, ``sql/queries/realtime_metric_stats.sql``).

Events that arrive before their exposure: every event stays *held* (kept in memory, one chunk of columns
per batch: ``pipelines/held_store.py``) for
``hold`` of processing time; an exposure that arrives meanwhile attributes the held events it covers.
An exposure arriving later than that does not attribute older events (a documented limit; the batch
ETL can recompute attribution from the raw tables). Held events are capped at ``max_held`` (oldest
released first).

Exposures of one unit are expected roughly in order; when an earlier exposure arrives after a later
one, the first exposure (and its variation) moves back, held events are re-examined, and events
attributed before stay attributed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter

import numpy as np

from pipelines.attribution_rows import AttributedArrays, Attribution, EventAttributions
from pipelines.field_lists import FieldLists
from pipelines.first_exposure_columns import (
    FirstExposureColumns,
    attributed_tuples,
    window_limits,
    windows_in_us,
)
from pipelines.held_columns import HeldArrays, HeldEntry, attribute_held_joined
from pipelines.held_store import HeldStore
from schemas import Exposure, MetricEvent

__all__ = [
    "AttributedArrays",
    "Attribution",
    "AttributionState",
    "EventAttributions",
    "HeldArrays",
    "UnitExposure",
]

_unit_id = attrgetter("unit_id")
_event_name = attrgetter("event_name")
_event_id = attrgetter("event_id")
_value = attrgetter("value")
_occurred_at = attrgetter("occurred_at")
_first_exposed_at = attrgetter("first_exposed_at")


@dataclass(slots=True)
class UnitExposure:
    """A unit's exposure state in one experiment."""

    first_exposed_at: datetime
    variation_id: int
    """Variation of the first exposure."""
    multiple_variations: bool = False
    """Exposed to more than one variation. A flag, not the set of variations seen: while it is False every
    exposure seen had ``variation_id``, so one comparison keeps it (a one-element set per unit and
    experiment was 216 B, a quarter of what the worker kept per first exposure)."""
    pair: int = field(default=-1, compare=False, repr=False)
    """Row of this state in :class:`FirstExposureColumns` (-1: not there yet)."""


class AttributionState:
    """First exposures per unit and experiment, and the events held for late exposures."""

    def __init__(
        self,
        *,
        default_window: timedelta,
        windows: Mapping[tuple[str, str], timedelta | None] | None = None,
        hold: timedelta,
        max_held: int = 1_000_000,
        columnar: bool = True,
    ) -> None:
        self.default_window = default_window
        self.windows = dict(windows or {})
        self.hold = hold
        self.max_held = max_held
        self.units: dict[str, dict[str, UnitExposure]] = {}
        self._held = HeldStore()
        """Every held event, in holding order (``pipelines/held_store.py``, decision 0108)."""
        self.released = 0
        self.released_early = 0
        """Held events released unattributed before their hold ended because ``max_held`` were held: a late
        exposure can no longer attribute them (a backlog read events first, or the cap is too low for the
        traffic). Events already attributed to an experiment are not counted."""
        # (experiment_key,) per experiment, shared by the held events attributed to that one experiment
        # (a tuple per event was ~16 k new GC-tracked objects per 20 k-record batch).
        self._singletons: dict[str, tuple[str]] = {}
        self.columnar = columnar
        """Attribute new events by the batch join over :attr:`columns` when the caller gives their times
        (the processor does); False: always the per-record walk (the reference implementation)."""
        self.columns = FirstExposureColumns()

    # -- state -------------------------------------------------------------------------------------

    @property
    def held_count(self) -> int:
        return len(self._held)

    def held_units(self) -> list[str]:
        """The units holding events, sorted."""
        return self._held.units()

    def window_of(self, experiment_key: str, event_name: str) -> timedelta | None:
        """The window of an event in an experiment: its metrics' longest (None: no end), else the default."""
        key = (experiment_key, event_name)
        return self.windows.get(key, self.default_window)

    def load_unit_exposure(
        self,
        unit_id: str,
        experiment_key: str,
        first_exposed_at: datetime,
        variation_id: int,
        variations: Iterable[int],
    ) -> None:
        """Restore one unit's state (from ``xp.unit_exposures`` on start); ``variations``: the variation ids
        it was exposed to (with ``variation_id``, so more than one distinct id marks it)."""
        experiments = self.units.setdefault(unit_id, {})
        multiple = any(other != variation_id for other in variations)
        state = UnitExposure(first_exposed_at, variation_id, multiple)
        before = experiments.get(experiment_key)
        experiments[experiment_key] = state
        if before is None:
            state.pair = self.columns.add(unit_id, experiment_key, state)
        else:  # replaced: same place in the unit's order
            state.pair = before.pair
            self.columns.update(state.pair, state)

    def hold_event(self, event: MetricEvent, held_at: datetime, attributed_to: Iterable[str] = ()) -> None:
        """Hold an event (restored from the warehouse on start, with the experiments it already has)."""
        entry = (event.event_id, event.event_name, event.value, event.occurred_at, tuple(set(attributed_to)))
        self._held.hold_one(held_at, event.unit_id, entry)

    def hold_restored(
        self,
        runs: Sequence[tuple[datetime, int, int]],
        units: list[str],
        event_ids: list[str],
        names: list[str],
        values: list[float | None],
        occurred: list[datetime],
        attributed: list[tuple[str, ...]],
    ) -> int:
        """:meth:`hold_event` for many events restored from the warehouse, as aligned columns (``runs``:
        ``(held_at, start, end)`` of consecutive positions held at one time); returns how many were held
        (an event its unit holds already is not held twice)."""
        return self._held.hold_restored(runs, units, event_ids, names, values, occurred, attributed)

    def drop_held(self, keep: Callable[[str], bool]) -> int:
        """Drop the held events of the units ``keep`` rejects (another worker's now); returns how many."""
        return self._held.drop(keep)

    def release_expired(self, now: datetime) -> int:
        """Release held events older than ``hold`` or beyond ``max_held`` (oldest first); returns how many."""
        released, early = self._held.release(now - self.hold, self.max_held)
        self.released += released
        self.released_early += early
        return released

    # -- the two inputs ----------------------------------------------------------------------------

    def observe_exposures(self, exposures: Sequence[Exposure], now: datetime) -> list[Attribution]:
        """Update first exposures; return attributions of held events the new state now covers."""
        return self._attribute_held_of(self._observe(exposures))

    def observe_exposures_columns(
        self, exposures: Sequence[Exposure], now: datetime
    ) -> HeldArrays | list[Attribution]:
        """:meth:`observe_exposures`, the held events attributed by one join when it is exact
        (``pipelines/held_columns.py``, docs/decisions/0097): the same rows, in the same order, as columns;
        else (``columnar`` off, an exotic state, time or window) the walk's list."""
        units = self._observe(exposures)
        if not units:
            return []
        windows = None if not self.columnar or self.columns.exotic else self._windows_us()
        if windows is not None:
            view, where = self._held.view(units)
            arrays = attribute_held_joined(view, units, self.columns, *windows)
            if arrays is not None:
                self._held.write_back(view, units, where)
                return arrays
        return self._attribute_held_of(units)

    def _observe(self, exposures: Sequence[Exposure]) -> list[str]:
        """Update first exposures; the units whose state changed and that have held events, sorted."""
        changed: set[str] = set()
        units = self.units
        new: list[tuple[str, str, UnitExposure]] = []  # pairs added to the columns at once, in order
        for exposure in exposures:
            unit_id = exposure.unit_id
            experiments = units.get(unit_id)
            if experiments is None:
                experiments = units[unit_id] = {}
            state = experiments.get(exposure.experiment_key)
            if state is None:
                state = experiments[exposure.experiment_key] = UnitExposure(
                    exposure.exposed_at, exposure.variation_id
                )
                new.append((unit_id, exposure.experiment_key, state))
                changed.add(unit_id)
                continue
            if exposure.variation_id != state.variation_id:  # before a new first exposure changes it
                state.multiple_variations = True
            if exposure.exposed_at < state.first_exposed_at:
                state.first_exposed_at = exposure.exposed_at
                state.variation_id = exposure.variation_id
                if state.pair >= 0:  # a pair of this batch is added below with its final state
                    self.columns.update(state.pair, state)
                changed.add(unit_id)
        if new:
            self.columns.add_many(new)
        return self._held.holding(sorted(changed))

    def attribute_events(self, events: Sequence[MetricEvent], now: datetime) -> list[Attribution]:
        """Attribute new events to the experiments their unit is in, and hold them for late exposures."""
        columns = self.attribute_events_columns(events, now)
        return [
            Attribution(
                events[position].event_id,
                events[position].unit_id,
                experiment_key,
                variation_id,
                events[position].event_name,
                events[position].value,
                events[position].occurred_at,
                first,
            )
            for position, experiment_key, variation_id, first in zip(*columns, strict=True)
        ]

    def attribute_events_columns(
        self, events: Sequence[MetricEvent], now: datetime, occurred_ms: np.ndarray | None = None
    ) -> EventAttributions:
        """:meth:`attribute_events` as columns: the rest of each row is the event's (``positions`` into
        ``events``), so a caller holding the events as an Arrow table builds the rows with one ``take``.

        ``occurred_ms``: the events' ``occurred_at`` as epoch milliseconds (int64, aligned with
        ``events``), which the caller vouches are whole milliseconds (decoded records are); with it the
        events are attributed by :meth:`attribute_events_arrays` when it can (same rows, same order, same
        held events)."""
        arrays = None if occurred_ms is None else self.attribute_events_arrays(events, now, occurred_ms)
        if arrays is None:
            return self._attribute_walked(events, now)
        keys = arrays.experiment_keys
        pairs: list[int] = arrays.pairs.tolist()
        return EventAttributions(
            arrays.positions.tolist(),
            list(map(keys.__getitem__, arrays.experiment_codes.tolist())),
            arrays.variation_ids.tolist(),
            list(map(_first_exposed_at, map(self.columns.states.__getitem__, pairs))),
        )

    def attribute_events_arrays(
        self,
        events: Sequence[MetricEvent],
        now: datetime,
        occurred_ms: np.ndarray,
        fields: FieldLists | None = None,
    ) -> AttributedArrays | None:
        """Attribute new events (and hold them) by one join over :attr:`columns` (docs/decisions/0076),
        the result as numpy columns; None, with nothing done, when the join cannot decide exactly here
        (a state time or window outside what the integer comparison covers, or ``columnar`` off): then
        use :meth:`attribute_events_columns`. ``occurred_ms`` as there; ``fields``: the events' fields
        as lists, read once for the batch (:mod:`pipelines.field_lists`)."""
        if not self.columnar or not events or self.columns.exotic:
            return None
        windows = self._windows_us()
        if windows is None:
            return None
        return self._attribute_joined(events, now, occurred_ms, *windows, fields or FieldLists(events))

    def _windows_us(self) -> tuple[int | None, dict[tuple[str, str], int | None]] | None:
        """The windows in microseconds, or None when one is too long for the join (the walk decides)."""
        return windows_in_us(self.default_window, self.windows)

    def _attribute_joined(
        self,
        events: Sequence[MetricEvent],
        now: datetime,
        occurred_ms: np.ndarray,
        default_us: int | None,
        windows_us: Mapping[tuple[str, str], int | None],
        fields: FieldLists,
    ) -> AttributedArrays:
        """:meth:`_attribute_walked`'s result by a batch join, as columns."""
        columns = self.columns
        unit_ids: list[str] = fields["unit_id"]
        names: list[str] = fields["event_name"]
        positions, pairs = columns.candidates(unit_ids)
        if len(pairs):
            since = occurred_ms[positions] * 1000 - columns.first_us[pairs]
            kept = since >= 0
            kept &= since <= window_limits(columns, names, default_us, windows_us, positions, pairs)
            positions, pairs = positions[kept], pairs[kept]
        result = AttributedArrays(
            positions,
            pairs,
            columns.experiment[pairs],
            list(columns.experiment_keys),
            columns.variation[pairs],
            columns.first_us[pairs] // 1000,
        )
        if self.hold > timedelta(0):
            self._hold_new(now, fields, result)
        return result

    def _hold_new(self, now: datetime, fields: FieldLists, rows: AttributedArrays) -> None:
        """Hold every new event with the experiments it was attributed to (as the walk does)."""
        self._held.hold_many(
            now,
            fields["unit_id"],
            fields["event_id"],
            fields["event_name"],
            fields["value"],
            fields["occurred_at"],
            attributed_tuples(
                len(fields.records), rows.positions, rows.experiment_codes, rows.experiment_keys
            ),
        )

    def _attribute_walked(self, events: Sequence[MetricEvent], now: datetime) -> EventAttributions:
        """Record by record: the reference implementation of :meth:`attribute_events_columns`."""
        positions: list[int] = []
        experiment_keys: list[str] = []
        variation_ids: list[int] = []
        firsts: list[datetime] = []
        add_position, add_key = positions.append, experiment_keys.append
        add_variation, add_first = variation_ids.append, firsts.append
        units = self.units
        hold = self.hold > timedelta(0)
        held_attributed: list[tuple[str, ...]] = []
        hold_attributed = held_attributed.append
        windows, default = self.windows, self.default_window
        singletons = self._singletons
        for position, event in enumerate(events):
            unit_id = event.unit_id
            occurred_at = event.occurred_at
            attributed: tuple[str, ...] = ()
            experiments = units.get(unit_id)
            if experiments:
                for experiment_key, state in experiments.items():  # insertion order: deterministic
                    first = state.first_exposed_at
                    if occurred_at < first:
                        continue
                    window = windows.get((experiment_key, event.event_name), default) if windows else default
                    if window is not None and occurred_at > first + window:
                        continue
                    if attributed:
                        attributed += (experiment_key,)
                    else:  # the common case: one shared tuple per experiment, not one per event
                        attributed = singletons.get(experiment_key) or singletons.setdefault(
                            experiment_key, (experiment_key,)
                        )
                    add_position(position)
                    add_key(experiment_key)
                    add_variation(state.variation_id)
                    add_first(first)
            hold_attributed(attributed)
        if hold:  # ids are unique here (deduplicated upstream): no per-event key needed
            self._held.hold_many(
                now,
                list(map(_unit_id, events)),
                list(map(_event_id, events)),
                list(map(_event_name, events)),
                list(map(_value, events)),
                list(map(_occurred_at, events)),
                held_attributed,
            )
        return EventAttributions(positions, experiment_keys, variation_ids, firsts)

    def attribute_held(self) -> list[Attribution]:
        """Attributions of every held event not attributed yet (after restoring state on start)."""
        return self._attribute_held_of(self._held.units())

    def _attribute_held_of(self, units: list[str]) -> list[Attribution]:
        """Record by record: attributions of the held events of ``units`` (sorted, each holding events)."""
        view, where = self._held.view(units)
        attributions: list[Attribution] = []
        for unit_id in units:
            self._attribute_held_entries(unit_id, view[unit_id], attributions)
        self._held.write_back(view, units, where)
        return attributions

    def _attribute_held_entries(self, unit_id: str, entries: list[HeldEntry], out: list[Attribution]) -> None:
        """Attribute held events of one unit to experiments they are not attributed to yet (in place)."""
        experiments = self.units.get(unit_id)
        if not experiments:
            return
        windows, default = self.windows, self.default_window
        for index, entry in enumerate(entries):
            event_id, event_name, value, occurred_at, attributed = entry
            before = attributed
            for experiment_key, state in experiments.items():  # insertion order: deterministic per input
                first = state.first_exposed_at
                if occurred_at < first or experiment_key in attributed:
                    continue
                window = windows.get((experiment_key, event_name), default) if windows else default
                if window is not None and occurred_at > first + window:
                    continue
                attributed += (experiment_key,)
                out.append(
                    Attribution(
                        event_id,
                        unit_id,
                        experiment_key,
                        state.variation_id,
                        event_name,
                        value,
                        occurred_at,
                        first,
                    )
                )
            if attributed is not before:
                entries[index] = (event_id, event_name, value, occurred_at, attributed)
