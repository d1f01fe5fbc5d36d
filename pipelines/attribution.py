"""Attribution of metric events to the unit's exposures: pure worker state, no Kafka, no warehouse.

Rule: an event ``e`` of unit ``u`` is attributed to experiment ``x`` when ``u``'s **first** exposure to
``x`` happened at ``f`` with ``f <= e.occurred_at <= f + window(x, e.event_name)``. The window is the
longest attribution window of ``x``'s metrics that count ``e.event_name`` (None: no end; the metric
catalog's defaults have none), else the configured default; shorter per-metric windows are applied
at analysis time from ``occurred_at - first_exposed_at``, which every attribution row carries. A row
carries the variation of that first exposure. A unit exposed to more than one variation of ``x`` is marked
(:attr:`UnitExposure.multiple_variations`); its events are still attributed, and analysis excludes it
(``xp.unit_exposures``, ``sql/queries/realtime_metric_stats.sql``).

Events that arrive before their exposure: every event stays *held* (kept in memory per unit) for
``hold`` of processing time; an exposure that arrives meanwhile attributes the held events it covers.
An exposure arriving later than that does not attribute older events (a documented limit; the batch
ETL can recompute attribution from the raw tables). Held events are capped at ``max_held`` (oldest
released first).

Exposures of one unit are expected roughly in order; when an earlier exposure arrives after a later
one, the first exposure (and its variation) moves back, held events are re-examined, and events
attributed before stay attributed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from schemas import Exposure, MetricEvent

__all__ = ["Attribution", "AttributionState", "UnitExposure"]


@dataclass(slots=True)
class UnitExposure:
    """A unit's exposure state in one experiment."""

    first_exposed_at: datetime
    variation_id: int
    """Variation of the first exposure."""
    variations: set[int] = field(default_factory=set)

    @property
    def multiple_variations(self) -> bool:
        return len(self.variations) > 1


class Attribution(NamedTuple):
    """One (event, experiment) pair: a row of ``xp.attributed_events`` (a tuple: cheap to build)."""

    event_id: str
    unit_id: str
    experiment_key: str
    variation_id: int
    event_name: str
    value: float | None
    occurred_at: datetime
    first_exposed_at: datetime


_HeldEntry = tuple[str, str, float | None, datetime, tuple[str, ...]]
"""A held event: (event_id, event_name, value, occurred_at, experiments it is attributed to).

A plain tuple of atomic values (not a struct, not a set): the garbage collector stops tracking it after
its first pass, so hundreds of thousands of held events cost the collector nothing (they used to be
three tracked objects each, and full collections over them dominated the kernel's time)."""

_new_tuple = tuple.__new__


class AttributionState:
    """First exposures per unit and experiment, and the events held for late exposures."""

    def __init__(
        self,
        *,
        default_window: timedelta,
        windows: Mapping[tuple[str, str], timedelta | None] | None = None,
        hold: timedelta,
        max_held: int = 1_000_000,
    ) -> None:
        self.default_window = default_window
        self.windows = dict(windows or {})
        self.hold = hold
        self.max_held = max_held
        self.units: dict[str, dict[str, UnitExposure]] = {}
        self._held: dict[str, list[_HeldEntry]] = {}
        self._held_order: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self.released = 0

    # -- state -------------------------------------------------------------------------------------

    @property
    def held_count(self) -> int:
        return len(self._held_order)

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
        """Restore one unit's state (from ``xp.unit_exposures`` on start)."""
        self.units.setdefault(unit_id, {})[experiment_key] = UnitExposure(
            first_exposed_at, variation_id, set(variations)
        )

    def hold_event(self, event: MetricEvent, held_at: datetime, attributed_to: Iterable[str] = ()) -> None:
        """Hold an event (restored from the warehouse on start, with the experiments it already has)."""
        key = (event.unit_id, event.event_id)
        if key in self._held_order:
            return
        entry = (event.event_id, event.event_name, event.value, event.occurred_at, tuple(set(attributed_to)))
        self._held.setdefault(event.unit_id, []).append(entry)
        self._held_order[key] = held_at

    def release_expired(self, now: datetime) -> int:
        """Release held events older than ``hold`` or beyond ``max_held``; returns how many."""
        horizon = now - self.hold
        released = 0
        order = self._held_order
        held = self._held
        max_held = self.max_held
        while order:
            (unit_id, event_id), held_at = next(iter(order.items()))
            if held_at >= horizon and len(order) <= max_held:
                break
            del order[(unit_id, event_id)]
            remaining = [h for h in held.get(unit_id, ()) if h[0] != event_id]
            if remaining:
                held[unit_id] = remaining
            else:
                held.pop(unit_id, None)
            released += 1
        self.released += released
        return released

    # -- the two inputs ----------------------------------------------------------------------------

    def observe_exposures(self, exposures: Sequence[Exposure], now: datetime) -> list[Attribution]:
        """Update first exposures; return attributions of held events the new state now covers."""
        changed: set[str] = set()
        units = self.units
        for exposure in exposures:
            unit_id = exposure.unit_id
            experiments = units.get(unit_id)
            if experiments is None:
                experiments = units[unit_id] = {}
            state = experiments.get(exposure.experiment_key)
            if state is None:
                experiments[exposure.experiment_key] = UnitExposure(
                    exposure.exposed_at, exposure.variation_id, {exposure.variation_id}
                )
                changed.add(unit_id)
                continue
            state.variations.add(exposure.variation_id)
            if exposure.exposed_at < state.first_exposed_at:
                state.first_exposed_at = exposure.exposed_at
                state.variation_id = exposure.variation_id
                changed.add(unit_id)
        attributions: list[Attribution] = []
        held = self._held
        for unit_id in sorted(changed):
            entries = held.get(unit_id)
            if entries:
                self._attribute_held_entries(unit_id, entries, attributions)
        return attributions

    def attribute_events(self, events: Sequence[MetricEvent], now: datetime) -> list[Attribution]:
        """Attribute new events to the experiments their unit is in, and hold them for late exposures."""
        attributions: list[Attribution] = []
        append = attributions.append
        units = self.units
        held = self._held
        order = self._held_order
        hold = self.hold > timedelta(0)
        windows, default = self.windows, self.default_window
        for event in events:
            unit_id = event.unit_id
            event_id = event.event_id
            event_name = event.event_name
            value = event.value
            occurred_at = event.occurred_at
            attributed: tuple[str, ...] = ()
            experiments = units.get(unit_id)
            if experiments:
                for experiment_key, state in experiments.items():  # insertion order: deterministic
                    first = state.first_exposed_at
                    if occurred_at < first:
                        continue
                    window = windows.get((experiment_key, event_name), default) if windows else default
                    if window is not None and occurred_at > first + window:
                        continue
                    attributed += (experiment_key,)
                    append(
                        _new_tuple(
                            Attribution,
                            (
                                event_id,
                                unit_id,
                                experiment_key,
                                state.variation_id,
                                event_name,
                                value,
                                occurred_at,
                                first,
                            ),
                        )
                    )
            if hold:
                key = (unit_id, event_id)
                if key not in order:
                    entries = held.get(unit_id)
                    entry = (event_id, event_name, value, occurred_at, attributed)
                    if entries is None:
                        held[unit_id] = [entry]
                    else:
                        entries.append(entry)
                    order[key] = now
        return attributions

    def attribute_held(self) -> list[Attribution]:
        """Attributions of every held event not attributed yet (after restoring state on start)."""
        attributions: list[Attribution] = []
        for unit_id in sorted(self._held):
            self._attribute_held_entries(unit_id, self._held[unit_id], attributions)
        return attributions

    def _attribute_held_entries(
        self, unit_id: str, entries: list[_HeldEntry], out: list[Attribution]
    ) -> None:
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
