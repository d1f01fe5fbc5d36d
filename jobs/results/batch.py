"""Many metrics of one experiment in one query: ``sql/queries/results_experiment_sums.sql``.

``results_metric_sums.sql`` scans the attributed events once per metric; an experiment with 20 metrics
and a segment breakdown scanned them 40 times. This module plans one scan for every metric whose sides
(the metric, or a ratio's numerator and denominator) are ``binary``, ``count`` or ``sum`` of the event's
``value`` (the common case): each distinct side is one array slot of the query, a ratio adds one cross
product slot. Metrics with a ``properties.NAME`` value field or a ``unique`` aggregation are left to the
per-metric query (:attr:`BatchPlan.others`).

Pure: :func:`batch_plan` builds the parameters, :meth:`BatchPlan.decode` turns the rows into
``metric → [(segment, VariationSums)]``; the warehouse call is in :mod:`jobs.results.store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import Aggregation, MetricDefinition, MetricType

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

    def parameters(
        self, *, experiment: str, since: datetime, until: datetime, dimension: str = ""
    ) -> dict[str, Any]:
        names = list(dict.fromkeys(s[0] for s in self.sides))
        return {
            "experiment": experiment,
            "since": since,
            "until": until,
            "events": [s[0] for s in self.sides],
            "event_names": names,
            "positions": [names.index(s[0]) + 1 for s in self.sides],
            "aggregations": [s[1] for s in self.sides],
            "windows": [s[2] for s in self.sides],
            "cross_a": [a + 1 for a, _ in self.crosses],
            "cross_b": [b + 1 for _, b in self.crosses],
            "dimension": dimension,
        }

    @property
    def cells(self) -> tuple[tuple[str, float], ...]:
        """The distinct (event name, window seconds) of the sides, in order of first use.

        A unit's count and total of one cell serve every side over that event and window (binary, count
        and sum of ``purchase`` within 72 h read the same two per-unit numbers), so the per-unit step
        computes one ``countIf`` per cell and one ``sumIf`` per cell some ``sum`` side needs.
        """
        return tuple(dict.fromkeys((event, window) for event, _aggregation, window in self.sides))

    def sql(self) -> str:
        """The query with one plain column per cell and side (faster than per-row arrays; same rows as
        ``results_experiment_sums.sql``). Only cell and side indexes and our own aggregation names shape
        the text; every value is a bound parameter of :meth:`sql_parameters`."""
        return _generated_sql(self.sides, self.crosses, self.cells)

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
        from jobs.results import VariationSums

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
    """One query's plan for ``metrics`` (``catalog``: ratio parts by name)."""
    sides: list[Side] = []
    slots: dict[str, tuple[int, int | None, int | None]] = {}
    crosses: list[tuple[int, int]] = []
    others: list[MetricDefinition] = []

    def index(side: Side) -> int:
        if side not in sides:
            sides.append(side)
        return sides.index(side)

    for metric in metrics:
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


_VALUE = {"binary": "toFloat64(c{j} > 0)", "count": "toFloat64(c{j})", "sum": "t{j}"}


def _generated_sql(
    sides: Sequence[Side], crosses: Sequence[tuple[int, int]], cells: Sequence[tuple[str, float]]
) -> str:
    """``results_experiment_sums.sql`` with per-unit columns ``c{j}``/``t{j}`` per cell (j 1-based) and
    ``v{k}`` per side (k 1-based) instead of arrays."""
    summed = {cells.index((event, window)) for event, aggregation, window in sides if aggregation == "sum"}
    per_unit = []
    for j in range(1, len(cells) + 1):
        hit = (
            f"event_name = {{cell_events:Array(String)}}[{j}] AND ({{cell_windows:Array(Float64)}}[{j}] = 0"
            f" OR delay <= {{cell_windows:Array(Float64)}}[{j}] * 1000)"
        )
        per_unit.append(f"countIf({hit}) AS c{j}")
        if j - 1 in summed:
            per_unit.append(f"sumIf(number, {hit}) AS t{j}")
    values, sums, squares = [], [], []
    for k, (event, aggregation, window) in enumerate(sides, start=1):
        j = cells.index((event, window)) + 1
        values.append(_VALUE[aggregation].format(j=j) + f" AS v{k}")
        sums.append(f"sum(v{k})")
        squares.append(f"sum(v{k} * v{k})")
    cross = [f"sum(v{a + 1} * v{b + 1})" for a, b in crosses]
    crosses_sql = f"[{', '.join(cross)}]" if cross else "CAST([], 'Array(Float64)')"
    return f"""
WITH
    eligible AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,
               min(first_exposed_at) AS first_exposure
        FROM xp.unit_exposures
        WHERE experiment_key = {{experiment:String}}
        GROUP BY unit_id
        HAVING min(min_variation_id) = max(max_variation_id)
           AND max(overridden) = 0
           AND first_exposure >= {{since:DateTime64(3, 'UTC')}}
           AND first_exposure < {{until:DateTime64(3, 'UTC')}}
    ),
    segments AS
    (
        SELECT unit_id, argMin(attributes[{{dimension:String}}], exposed_at) AS segment
        FROM xp.exposures
        WHERE experiment_key = {{experiment:String}} AND {{dimension:String}} != ''
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name AS event_name,
            toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay,
            ifNull(a.value, 0.) AS number
        FROM xp.attributed_events AS a FINAL
        WHERE a.experiment_key = {{experiment:String}}
          AND a.event_name IN {{event_names:Array(String)}}
          AND a.occurred_at < {{until:DateTime64(3, 'UTC')}}
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, {", ".join(per_unit)}
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    valued AS
    (
        SELECT s.segment AS segment, e.variation_id AS variation_id, {", ".join(values)}
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN segments AS s ON s.unit_id = e.unit_id
    )
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    [{", ".join(sums)}] AS sums,
    [{", ".join(squares)}] AS squares,
    {crosses_sql} AS crosses
FROM valued
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0
"""  # nosec B608
