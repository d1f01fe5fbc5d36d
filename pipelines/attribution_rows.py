"""The attribution rows :class:`~pipelines.attribution.AttributionState` returns (pure types, re-exported
by :mod:`pipelines.attribution`)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import numpy as np

__all__ = ["AttributedArrays", "Attribution", "EventAttributions"]


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


class EventAttributions(NamedTuple):
    """Attributions of new events as columns (:meth:`AttributionState.attribute_events_columns`)."""

    positions: list[int]
    """Index of the attributed event in the input, once per (event, experiment)."""
    experiment_keys: list[str]
    variation_ids: list[int]
    first_exposed_at: list[datetime]


class AttributedArrays(NamedTuple):
    """Attributions of new events as numpy columns (:meth:`AttributionState.attribute_events_arrays`):
    one entry per (event, experiment), events in order, each event's experiments in its unit's order."""

    positions: np.ndarray
    """Index of the attributed event in the input (int64)."""
    pairs: np.ndarray
    """Row of the (unit, experiment) in :attr:`AttributionState.columns` (int64)."""
    experiment_codes: np.ndarray
    """Index into ``experiment_keys`` (int64)."""
    experiment_keys: list[str]
    variation_ids: np.ndarray
    """Variation of the unit's first exposure (int64)."""
    first_exposed_ms: np.ndarray
    """The unit's first exposure, epoch milliseconds (int64; the state's times are whole ms here)."""
