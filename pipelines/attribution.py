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


@dataclass(slots=True)
class _Held:
    event: MetricEvent
    held_at: datetime
    attributed_to: set[str]


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
        self._held: dict[str, list[_Held]] = {}
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
        self._held.setdefault(event.unit_id, []).append(_Held(event, held_at, set(attributed_to)))
        self._held_order[key] = held_at

    def release_expired(self, now: datetime) -> int:
        """Release held events older than ``hold`` or beyond ``max_held``; returns how many."""
        horizon = now - self.hold
        released = 0
        while self._held_order:
            (unit_id, event_id), held_at = next(iter(self._held_order.items()))
            if held_at >= horizon and len(self._held_order) <= self.max_held:
                break
            del self._held_order[(unit_id, event_id)]
            remaining = [h for h in self._held.get(unit_id, []) if h.event.event_id != event_id]
            if remaining:
                self._held[unit_id] = remaining
            else:
                self._held.pop(unit_id, None)
            released += 1
        self.released += released
        return released

    # -- the two inputs ----------------------------------------------------------------------------

    def observe_exposures(self, exposures: Sequence[Exposure], now: datetime) -> list[Attribution]:
        """Update first exposures; return attributions of held events the new state now covers."""
        changed: set[str] = set()
        for exposure in exposures:
            experiments = self.units.setdefault(exposure.unit_id, {})
            state = experiments.get(exposure.experiment_key)
            if state is None:
                experiments[exposure.experiment_key] = UnitExposure(
                    exposure.exposed_at, exposure.variation_id, {exposure.variation_id}
                )
                changed.add(exposure.unit_id)
                continue
            state.variations.add(exposure.variation_id)
            if exposure.exposed_at < state.first_exposed_at:
                state.first_exposed_at = exposure.exposed_at
                state.variation_id = exposure.variation_id
                changed.add(exposure.unit_id)
        attributions: list[Attribution] = []
        for unit_id in sorted(changed):
            for held in self._held.get(unit_id, []):
                attributions.extend(self._attribute(held))
        return attributions

    def attribute_events(self, events: Sequence[MetricEvent], now: datetime) -> list[Attribution]:
        """Attribute new events to the experiments their unit is in, and hold them for late exposures."""
        attributions: list[Attribution] = []
        for event in events:
            held = _Held(event, now, set())
            attributions.extend(self._attribute(held))
            if self.hold > timedelta(0):
                key = (event.unit_id, event.event_id)
                if key not in self._held_order:
                    self._held.setdefault(event.unit_id, []).append(held)
                    self._held_order[key] = now
        return attributions

    def attribute_held(self) -> list[Attribution]:
        """Attributions of every held event not attributed yet (after restoring state on start)."""
        attributions: list[Attribution] = []
        for unit_id in sorted(self._held):
            for held in self._held[unit_id]:
                attributions.extend(self._attribute(held))
        return attributions

    def _attribute(self, held: _Held) -> list[Attribution]:
        event = held.event
        experiments = self.units.get(event.unit_id)
        if not experiments:
            return []
        out: list[Attribution] = []
        occurred_at = event.occurred_at
        windows, default = self.windows, self.default_window
        for experiment_key, state in experiments.items():  # insertion order: deterministic per input
            first = state.first_exposed_at
            if occurred_at < first or experiment_key in held.attributed_to:
                continue
            window = windows.get((experiment_key, event.event_name), default) if windows else default
            if window is not None and occurred_at > first + window:
                continue
            held.attributed_to.add(experiment_key)
            out.append(
                Attribution(
                    event_id=event.event_id,
                    unit_id=event.unit_id,
                    experiment_key=experiment_key,
                    variation_id=state.variation_id,
                    event_name=event.event_name,
                    value=event.value,
                    occurred_at=occurred_at,
                    first_exposed_at=first,
                )
            )
        return out
