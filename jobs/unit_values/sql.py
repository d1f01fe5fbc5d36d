"""The SQL of ``xp.unit_values`` (migration 0009): build or refresh the per-unit rows, read them back.

Generated from a :class:`~jobs.unit_values.plan.UnitValuesPlan` like ``BatchPlan.sql()``: only cell and
side indexes shape the text, every value is a bound parameter (:func:`build_parameters`).

- :func:`build_sql`: ``INSERT … SELECT`` of one row per unit of the experiment, computed exactly as the
  live scan's per-unit stage (``BatchPlan.sql()``: ``xp.unit_exposures`` merged, ``xp.attributed_events``
  ``FINAL``, the first exposure's attributes from ``xp.exposures``; CUPED covariates from ``xp.events``
  ``FINAL`` as in ``results_metric_cuped_sums.sql``), for every unit (full build) or only for the units
  with a row stored at or after ``{watermark}`` in any of those tables (incremental). Every filter on
  a ``FINAL`` read is on sorting-key columns (experiment, event name, unit), so
  ``optimize_move_to_prewhere_if_final`` may apply it before the merge: same rows, less merging;
- :func:`read_sql`: the sufficient statistics per segment × variation from the newest row of each unit.
"""

from __future__ import annotations

from typing import Any

from jobs.unit_values.plan import UnitValuesPlan

__all__ = [
    "MAX_OCCURRED_SQL",
    "NOW_SQL",
    "STATE_SQL",
    "build_parameters",
    "build_sql",
    "changed_max_occurred_sql",
    "changed_units_sql",
    "read_sql",
]

NOW_SQL = "SELECT now64(3) AS now"

STATE_SQL = """
SELECT plan, watermark, max_occurred_at, version, built_at, refreshed_at
FROM xp.unit_values_state FINAL
WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}
"""

MAX_OCCURRED_SQL = """
SELECT max(occurred_at) AS max_occurred_at, count() AS rows
FROM xp.attributed_events
WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)}
"""


def changed_max_occurred_sql() -> str:
    """The newest occurred_at among attributed rows stored at or after the watermark (or NULL)."""
    return (
        "SELECT max(occurred_at) AS max_occurred_at, count() AS rows FROM xp.attributed_events"
        " WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)}"
        " AND attributed_at >= {watermark:DateTime64(3, 'UTC')}"
    )


def changed_units_sql(plan: UnitValuesPlan) -> str:
    """How many units the incremental build would recompute (0: nothing to do)."""
    return f"SELECT count() AS units FROM ({_changed(plan)})"  # nosec B608


def _changed(plan: UnitValuesPlan) -> str:
    """The units with a row stored at or after the watermark in a table their values come from."""
    parts = [
        "SELECT unit_id FROM xp.attributed_events WHERE experiment_key = {experiment:String}"
        " AND event_name IN {event_names:Array(String)}"
        " AND attributed_at >= {watermark:DateTime64(3, 'UTC')}",
        "SELECT unit_id FROM xp.exposures WHERE experiment_key = {experiment:String}"
        " AND ingested_at >= {watermark:DateTime64(3, 'UTC')}",
    ]
    if plan.covariate_events:
        parts.append(
            "SELECT unit_id FROM xp.events WHERE event_name IN {covariate_events:Array(String)}"
            " AND ingested_at >= {watermark:DateTime64(3, 'UTC')}"
        )
    return "\n        UNION DISTINCT\n        ".join(parts)


def build_parameters(
    plan: UnitValuesPlan, *, experiment: str, version: int, watermark: Any = None
) -> dict[str, Any]:
    """The bound parameters of :func:`build_sql` (``watermark`` only for the incremental form)."""
    parameters: dict[str, Any] = {
        "experiment": experiment,
        "plan_key": plan.key,
        "version": version,
        "event_names": list(plan.event_names),
        "cell_events": [event for event, _window in plan.cells],
        "cell_windows": [window for _event, window in plan.cells],
    }
    if plan.covariate_events:
        parameters["covariate_events"] = list(plan.covariate_events)
        parameters["covariate_seconds"] = plan.covariate_seconds
    if watermark is not None:
        parameters["watermark"] = watermark
    return parameters


def build_sql(plan: UnitValuesPlan, *, incremental: bool) -> str:
    """``INSERT INTO xp.unit_values`` one row per unit (every unit, or the changed ones)."""
    only = " AND unit_id IN (SELECT unit_id FROM changed)" if incremental else ""
    only_a = " AND a.unit_id IN (SELECT unit_id FROM changed)" if incremental else ""
    hits = [
        f"event_name = {{cell_events:Array(String)}}[{j}] AND ({{cell_windows:Array(Float64)}}[{j}] = 0"
        f" OR delay <= {{cell_windows:Array(Float64)}}[{j}] * 1000)"
        for j in range(1, len(plan.cells) + 1)
    ]
    counts = ", ".join(f"toUInt32(countIf({hit}))" for hit in hits)
    totals = ", ".join(f"sumIf(number, {hits[j]})" for j in plan.summed)
    totals_sql = f"[{totals}]" if totals else "CAST([], 'Array(Float64)')"
    changed = f"changed AS\n    (\n        {_changed(plan)}\n    ),\n    " if incremental else ""
    covariate_ctes, covariate_join, covariate_columns = (
        "",
        "",
        "CAST([], 'Array(UInt32)'), CAST([], 'Array(Float64)')",
    )
    if plan.covariate_events:
        n = len(plan.covariate_events)
        per_event_counts = ", ".join(
            f"toUInt32(countIf(event_name = {{covariate_events:Array(String)}}[{i}]))"
            for i in range(1, n + 1)
        )
        per_event_totals = ", ".join(
            f"sumIf(number, event_name = {{covariate_events:Array(String)}}[{i}])" for i in range(1, n + 1)
        )
        covariate_ctes = f""",
    pre AS
    (
        SELECT e.unit_id AS unit_id, e.event_name AS event_name, ifNull(e.value, 0.) AS number
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value
            FROM xp.events FINAL
            WHERE event_name IN {{covariate_events:Array(String)}}{only}
        ) AS e
        INNER JOIN units AS u ON u.unit_id = e.unit_id
        WHERE e.occurred_at < u.first_exposure
          AND dateDiff('millisecond', e.occurred_at, u.first_exposure) <= {{covariate_seconds:Float64}} * 1000
    ),
    covariates AS
    (
        SELECT unit_id, [{per_event_counts}] AS counts, [{per_event_totals}] AS totals
        FROM pre
        GROUP BY unit_id
    )"""  # nosec B608
        covariate_join = "\nLEFT JOIN covariates AS c ON c.unit_id = e.unit_id"
        covariate_columns = "c.counts, c.totals"
    return f"""
INSERT INTO xp.unit_values (experiment_key, plan_key, unit_id, variation_id, eligible, multiple_variations,
    overridden, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, version)
WITH
    {changed}units AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,
               min(first_exposed_at) AS first_exposure,
               min(min_variation_id) != max(max_variation_id) AS multiple,
               max(overridden) != 0 AS overridden_
        FROM xp.unit_exposures
        WHERE experiment_key = {{experiment:String}}{only}
        GROUP BY unit_id
    ),
    first_attributes AS
    (
        SELECT unit_id, argMin(attributes, exposed_at) AS attributes
        FROM xp.exposures
        WHERE experiment_key = {{experiment:String}}{only}
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
          AND a.event_name IN {{event_names:Array(String)}}{only_a}
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, [{counts}] AS counts, {totals_sql} AS totals
        FROM matched
        GROUP BY unit_id, variation_id
    ){covariate_ctes}
SELECT
    {{experiment:String}}, {{plan_key:String}}, e.unit_id, e.variation_id,
    NOT e.multiple AND NOT e.overridden_, e.multiple, e.overridden_, e.first_exposure, s.attributes,
    u.counts, u.totals, {covariate_columns}, {{version:UInt64}}
FROM units AS e
LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
LEFT JOIN first_attributes AS s ON s.unit_id = e.unit_id{covariate_join}
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608


def read_sql(plan: UnitValuesPlan) -> str:
    """Per segment × variation: units, Σ/Σ² of every side, Σa·b of every ratio, CUPED covariate sums.

    The rows of ``BatchPlan.sql()`` (same columns), plus ``covariate_sums``, ``covariate_squares``,
    ``covariate_crosses`` (Σ side·covariate) and ``covariate_units`` (units with a pre-exposure event)
    per covariate slot. Units: eligible, first exposed in ``[since, until)``.
    """
    sides = ", ".join(plan.side_expression(k) for k in range(len(plan.sides)))
    crosses = [f"sum(v[{a + 1}] * v[{b + 1}])" for a, b in plan.batch.crosses]
    crosses_sql = f"[{', '.join(crosses)}]" if crosses else "CAST([], 'Array(Float64)')"
    covariate_select, covariate_inner = "", ""
    if plan.covariate_slots:
        xs = ", ".join(plan.covariate_expression(slot) for slot in plan.covariate_slots)
        ys = ", ".join(f"v[{slot.side + 1}]" for slot in plan.covariate_slots)
        has = ", ".join(f"toUInt64(covariate_counts[{slot.event + 1}] > 0)" for slot in plan.covariate_slots)
        covariate_inner = f", [{xs}] AS x, [{ys}] AS y, [{has}] AS h"
        covariate_select = """,
    sumForEach(x) AS covariate_sums,
    sumForEach(arrayMap(t -> t * t, x)) AS covariate_squares,
    sumForEach(arrayMap((s, t) -> s * t, y, x)) AS covariate_crosses,
    sumForEach(h) AS covariate_units"""
    return f"""
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(t -> t * t, v)) AS squares,
    {crosses_sql} AS crosses{covariate_select}
FROM
(
    SELECT
        if({{dimension:String}} = '', '', attributes[{{dimension:String}}]) AS segment,
        variation_id,
        [{sides}] AS v{covariate_inner}
    FROM xp.unit_values FINAL
    WHERE experiment_key = {{experiment:String}} AND plan_key = {{plan_key:String}} AND eligible
      AND first_exposed_at >= {{since:DateTime64(3, 'UTC')}}
      AND first_exposed_at < {{until:DateTime64(3, 'UTC')}}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id
"""  # nosec B608
