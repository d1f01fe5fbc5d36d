"""What ``xp.unit_values`` holds per unit for one experiment's metrics, and how results read it back.

A :class:`UnitValuesPlan` is built from the :class:`~jobs.results.batch.BatchPlan` of the experiment's
metrics (only the metrics one shared scan answers: ``binary``/``count``/``sum`` of the event value):

- **cells**: the distinct (event, window) pairs of the sides; a unit's row holds one count per cell and
  one total per cell some ``sum`` side reads (``summed``);
- **covariate events** (CUPED only): the distinct event names of the non-ratio metrics; a unit's row
  holds the count and total of its raw events of that name in the ``covariate_seconds`` before its
  first exposure;
- **key**: a fingerprint of all of the above (and :data:`LAYOUT`). Rows of another key are never read:
  a changed metric definition is a new key, hence a full build.

Reading the rows back (:meth:`UnitValuesPlan.decode_covariates` and ``BatchPlan.decode``) gives the same
:class:`~jobs.results.rows.VariationSums` as the live scan. Pure; the SQL text is generated in
:mod:`jobs.results.metric_sql.unit_values`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.results.batch import BatchPlan, Side
from jobs.results.rows import VariationSums

__all__ = ["LAYOUT", "CovariateSlot", "UnitValuesPlan", "unit_values_plan"]

LAYOUT = "unit-values/2"
"""Version of the row layout: part of every key, so a change of layout rebuilds."""


@dataclass(frozen=True)
class CovariateSlot:
    """One CUPED-adjusted side: which side (0-based), which covariate event (0-based), its aggregation."""

    side: int
    event: int
    aggregation: str


@dataclass(frozen=True)
class UnitValuesPlan:
    """The per-unit layout for one experiment's batched metrics (see the module docstring)."""

    batch: BatchPlan
    covariate_events: tuple[str, ...] = ()
    covariate_seconds: float = 0.0
    adjusted: Mapping[str, int] = field(default_factory=dict)
    """CUPED: metric name → index into :attr:`covariate_slots`."""
    covariate_slots: tuple[CovariateSlot, ...] = ()

    @property
    def sides(self) -> tuple[Side, ...]:
        return self.batch.sides

    @property
    def cells(self) -> tuple[tuple[str, float], ...]:
        return self.batch.cells

    @property
    def summed(self) -> tuple[int, ...]:
        """0-based indexes of the cells whose total some ``sum`` side reads, in cell order."""
        wanted = {
            self.cells.index((event, window))
            for event, aggregation, window in self.sides
            if aggregation == "sum"
        }
        return tuple(sorted(wanted))

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(event for event, _window in self.cells))

    @property
    def key(self) -> str:
        """The fingerprint of the layout: rows written under another key are never read."""
        digest = hashlib.sha256(self.description().encode()).hexdigest()
        return digest[:16]

    def description(self) -> str:
        """The layout as JSON (stored next to the watermark, for people reading the state)."""
        return json.dumps(
            {
                "layout": LAYOUT,
                "cells": [[event, window] for event, window in self.cells],
                "summed": list(self.summed),
                "covariate_events": list(self.covariate_events),
                "covariate_seconds": self.covariate_seconds,
            },
            sort_keys=True,
        )

    def decode_covariates(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[VariationSums]]:
        """Read-query rows → adjusted metric → per-variation sums with the covariate (segments added up),
        as the live scan's CUPED query returns them."""
        found: dict[str, list[VariationSums]] = {}
        for name, s in self.adjusted.items():
            side = self.covariate_slots[s].side
            total: dict[int, VariationSums] = {}
            for row in rows:
                sums = VariationSums(
                    variation_id=int(row["variation_id"]),
                    units=int(row["units"]),
                    sum_a=float(row["sums"][side]),
                    sum_a_squares=float(row["squares"][side]),
                    has_covariate=True,
                    sum_x=float(row["covariate_sums"][s]),
                    sum_x_squares=float(row["covariate_squares"][s]),
                    cross_sum_ax=float(row["covariate_crosses"][s]),
                    units_with_covariate=int(row["covariate_units"][s]),
                )
                v = sums.variation_id
                total[v] = total[v] + sums if v in total else sums
            found[name] = [total[v] for v in sorted(total)]
        return found


def unit_values_plan(batch: BatchPlan, *, cuped: bool, covariate_days: float) -> UnitValuesPlan:
    """The layout for ``batch``; with ``cuped``, covariate cells for its non-ratio metrics."""
    if not cuped:
        return UnitValuesPlan(batch)
    events: list[str] = []
    slots: list[CovariateSlot] = []
    adjusted: dict[str, int] = {}
    for name, (a, b, _cross) in batch.slots.items():
        if b is not None:  # a ratio metric: never CUPED-adjusted
            continue
        event, aggregation, _window = batch.sides[a]
        if event not in events:
            events.append(event)
        slot = CovariateSlot(a, events.index(event), aggregation)
        if slot not in slots:
            slots.append(slot)
        adjusted[name] = slots.index(slot)
    return UnitValuesPlan(batch, tuple(events), covariate_days * 86400.0, adjusted, tuple(slots))
