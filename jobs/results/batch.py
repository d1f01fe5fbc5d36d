"""Many metrics of one experiment in one query (:func:`jobs.results.metric_sql.scan.experiment_sums_sql`).

The per-metric query scans the attributed events once per metric; an experiment with 20 metrics and a
segment breakdown scanned them 40 times. This module plans one scan for every metric whose sides
(the metric, or a ratio's numerator and denominator) are ``binary``, ``count`` or ``sum`` of the event's
``value`` (the common case): each distinct side is one array slot of the query, a ratio adds one cross
product slot. Metrics with a ``properties.NAME`` value field or a ``unique`` aggregation are left to the
per-metric query (:attr:`BatchPlan.others`).

Pure: :func:`batch_plan` builds the parameters, :meth:`BatchPlan.decode` turns the rows into
``metric → [(segment, VariationSums)]``; the warehouse call is in :mod:`jobs.results.sums`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import Aggregation, MetricDefinition, MetricType
from jobs.results.metric_sql.scan import experiment_sums_sql
from jobs.results.rows import VariationSums

__all__ = ["BATCHED_AGGREGATIONS", "BatchPlan", "Side", "batch_plan"]

BATCHED_AGGREGATIONS = frozenset({Aggregation.BINARY, Aggregation.COUNT, Aggregation.SUM})

Side = tuple[str, str, float]
"""(event name, aggregation, window seconds; 0 = none)."""


def _side(metric: MetricDefinition | None) -> Side | None:
    """The metric's batchable side, or None (not an event metric, a property field, ``unique``)."""
    if metric is None or metric.type is MetricType.RATIO or not metric.event_name:
        return None
    if metric.aggregation not in BATCHED_AGGREGATIONS or (metric.value_field or "").startswith("properties."):
        return None
    window = metric.window_hours * 3600.0 if metric.window_hours is not None else 0.0
    assert metric.aggregation is not None
    return metric.event_name, metric.aggregation.value, window


@dataclass(frozen=True)
class BatchPlan:
    """Which metrics one query answers, and where each one's numbers are in its arrays."""

    sides: tuple[Side, ...] = ()
    slots: Mapping[str, tuple[int, int | None, int | None]] = field(default_factory=dict)
    """metric → (side index of a, side index of b or None, cross index or None), 0-based."""
    crosses: tuple[tuple[int, int], ...] = ()
    others: tuple[MetricDefinition, ...] = ()
    """Metrics for the per-metric query."""

    @property
    def cells(self) -> tuple[tuple[str, float], ...]:
        """The distinct (event name, window seconds) of the sides, in order of first use.

        A unit's count and total of one cell serve every side over that event and window (binary, count
        and sum of ``purchase`` within 72 h read the same two per-unit numbers), so the per-unit step
        computes one ``countIf`` per cell and one ``sumIf`` per cell some ``sum`` side needs.
        """
        return tuple(dict.fromkeys((event, window) for event, _aggregation, window in self.sides))

    def sql(self) -> str:
        """The one-scan query (:func:`~jobs.results.metric_sql.scan.experiment_sums_sql`): one plain
        column per cell and side. Only cell and side indexes and our own aggregation names shape the
        text; every value is a bound parameter of :meth:`sql_parameters`."""
        return experiment_sums_sql(self.sides, self.crosses, self.cells)

    def sql_parameters(
        self, *, experiment: str, since: datetime, until: datetime, dimension: str = ""
    ) -> dict[str, Any]:
        """The parameters of :meth:`sql`: the bounds, the distinct event names, the cells' events and
        windows (the side structure is in its text)."""
        cells = self.cells
        return {
            "experiment": experiment,
            "since": since,
            "until": until,
            "event_names": list(dict.fromkeys(s[0] for s in self.sides)),
            "cell_events": [event for event, _window in cells],
            "cell_windows": [window for _event, window in cells],
            "dimension": dimension,
        }

    def decode(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
        """Query rows → metric → [(segment, VariationSums)] (the shape of the per-metric segment query)."""
        found: dict[str, list[tuple[str, Any]]] = {name: [] for name in self.slots}
        for row in rows:
            sums, squares, crosses = row["sums"], row["squares"], row["crosses"]
            for name, (a, b, cross) in self.slots.items():
                found[name].append(
                    (
                        str(row["segment"]),
                        VariationSums(
                            variation_id=int(row["variation_id"]),
                            units=int(row["units"]),
                            sum_a=float(sums[a]),
                            sum_a_squares=float(squares[a]),
                            sum_b=float(sums[b]) if b is not None else 0.0,
                            sum_b_squares=float(squares[b]) if b is not None else 0.0,
                            cross_sum=float(crosses[cross]) if cross is not None else 0.0,
                        ),
                    )
                )
        return found


def batch_plan(metrics: Sequence[MetricDefinition], catalog: Mapping[str, MetricDefinition]) -> BatchPlan:
    """One query's plan for ``metrics`` (``catalog``: ratio parts by name). Quantile metrics are left out:
    they are not sums (:mod:`jobs.results.quantile_stats`)."""
    sides: list[Side] = []
    slots: dict[str, tuple[int, int | None, int | None]] = {}
    crosses: list[tuple[int, int]] = []
    others: list[MetricDefinition] = []

    def index(side: Side) -> int:
        if side not in sides:
            sides.append(side)
        return sides.index(side)

    for metric in metrics:
        if metric.type is MetricType.QUANTILE:
            continue
        if metric.type is MetricType.RATIO:
            a = _side(catalog.get(metric.numerator or ""))
            b = _side(catalog.get(metric.denominator or ""))
            if a is None or b is None:
                others.append(metric)
                continue
            pair = (index(a), index(b))
            if pair not in crosses:
                crosses.append(pair)
            slots[metric.name] = (pair[0], pair[1], crosses.index(pair))
        else:
            side = _side(metric)
            if side is None:
                others.append(metric)
                continue
            slots[metric.name] = (index(side), None, None)
    return BatchPlan(tuple(sides), slots, tuple(crosses), tuple(others))
