"""The funnel query: per variation, the units that count and how many reached each step (issue #20).

Generated from :mod:`~jobs.results.metric_sql.rule`, so a funnel counts the same units as results:
the units of ``xp.unit_exposures`` in one variation, never overridden, first exposed in ``[since,
until)`` (:func:`rule.units_cte`), and their attributed events (``FINAL``, before ``until``) within the
funnel's window after the first exposure (:func:`rule.within_window`). Every unit that counts has
reached the implicit first step, ``exposure``.

A unit's *level* is the number of steps it reached:

- ordered funnels: ClickHouse's ``windowFunnel`` over the unit's step events (timestamps in ms), one
  condition per step; its own window is unbounded (:data:`UNBOUNDED_MS`) because the funnel's window is
  applied to the events first, and it is measured from the first exposure (which precedes every step);
- unordered funnels: the leading steps of which the unit has at least one event in the window.

Rows: ``variation_id``, ``units``, ``reached`` (``reached[k]``: units whose level ≥ k, 1-based over
the event steps). Parameters: ``experiment``, ``since``, ``until``, ``steps`` (Array(String)),
``window_seconds`` (Float64, 0: no window).

grain: variation_id, one experiment · time: first_exposed_at (units), occurred_at (events) ·
engine: xp.unit_exposures (AggregatingMergeTree, merged here), xp.attributed_events
(ReplacingMergeTree, FINAL). Pure; the warehouse call is in :mod:`jobs.funnels`.
"""

from __future__ import annotations

from typing import Final

from jobs.results.metric_sql import rule

__all__ = ["UNBOUNDED_MS", "funnel_sql"]

UNBOUNDED_MS: Final = 1 << 62
"""``windowFunnel``'s own window (ms): larger than any time span, the funnel's window is applied before."""


def _level(steps: int, ordered: bool) -> str:
    conditions = [f"event_name = {{steps:Array(String)}}[{j}]" for j in range(1, steps + 1)]
    if ordered:
        return f"windowFunnel({UNBOUNDED_MS})(at_ms, {', '.join(conditions)})"
    hits = [f"countIf({condition}) > 0" for condition in conditions]
    branches = ", ".join(f"NOT ({hit}), {j}" for j, hit in enumerate(hits))
    return f"toUInt8(multiIf({branches}, {steps}))"


def funnel_sql(steps: int, *, ordered: bool) -> str:
    """The funnel query for ``steps`` event steps (≥ 1), ordered or not (see the module docstring)."""
    if steps < 1:
        raise ValueError("a funnel needs at least one event step")
    matched = rule.attributed_events(
        "a.unit_id AS unit_id,\n"
        "            a.variation_id AS variation_id,\n"
        "            a.event_name AS event_name,\n"
        "            toUInt64(toUnixTimestamp64Milli(a.occurred_at)) AS at_ms",
        "{steps:Array(String)}",
        until=True,
    )
    window = rule.within_window("{window_seconds:Float64}", rule.delay_ms())
    reached = ", ".join(f"toUInt64(countIf(level >= {k}))" for k in range(1, steps + 1))
    return f"""
WITH
    {rule.units_cte(eligible_only=True)},
    matched AS
    (
        {matched}
          AND {window}
    ),
    levels AS
    (
        SELECT unit_id, variation_id, {_level(steps, ordered)} AS level
        FROM matched
        GROUP BY unit_id, variation_id
    )
SELECT
    e.variation_id AS variation_id,
    toUInt64(count()) AS units,
    [{reached}] AS reached
FROM eligible AS e
LEFT JOIN levels AS l ON l.unit_id = e.unit_id AND l.variation_id = e.variation_id
GROUP BY variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
"""  # nosec B608
