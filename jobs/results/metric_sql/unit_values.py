"""The per-unit values SQL of ``xp.unit_values`` (migration 0009): build or refresh the rows, read them back.

Generated from a :class:`~jobs.unit_values.plan.UnitValuesPlan` and :mod:`~jobs.results.metric_sql.rule`,
like the live scan (:func:`~jobs.results.metric_sql.scan.experiment_sums_sql`): only cell and side
indexes shape the text, every value is a bound parameter (:func:`build_parameters`).

- :func:`build_sql`: ``INSERT … SELECT`` of one row per unit of the experiment, computed by the same rule
  as the live scan's per-unit stage (every unit with its eligibility flags, the first exposure's
  attributes, one count per cell and one total per summed cell of its attributed events, CUPED covariate
  counts and totals of its raw events before its first exposure), for every unit (full build) or only for
  the units with a row stored at or after ``{watermark}`` in any of those tables (incremental). Unlike the
  scan, events are not bounded by ``until`` (results read the values only for windows that end after the
  newest event). Every filter on a ``FINAL`` read is on sorting-key columns (experiment, event name,
  unit), so ``optimize_move_to_prewhere_if_final`` may apply it before the merge: same rows, less merging;
- :func:`read_sql`: the sufficient statistics per segment × variation from the newest row of each unit
  that counts (:data:`~jobs.results.metric_sql.rule.ELIGIBLE`, first exposed in ``[since, until)``): the
  columns of the live scan plus the covariate sums;
- :func:`changed_units_sql`: how many units an incremental build would recompute;
- :func:`fold_sql` (decision 0099): ``INSERT … SELECT`` of the stored row plus the attributed rows stored
  since ``{watermark}`` (O(new rows)), for the units whose new rows can simply be added: no exposure (or
  CUPED raw event) of the unit stored since, a stored row, no new key already in its ``folded`` keys, no
  key twice among the new rows. :func:`build_sql` with ``after_fold`` then recomputes the other changed
  units in full (those not written at this refresh's ``{version}``), and :func:`recompute_units_sql`
  counts them.

Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.results.metric_sql import rule

if TYPE_CHECKING:
    from jobs.unit_values.plan import CovariateSlot, UnitValuesPlan

__all__ = [
    "KEY_HASH",
    "build_parameters",
    "build_sql",
    "cell_aggregates",
    "changed_units_sql",
    "covariate_value",
    "fold_sql",
    "moved_units",
    "read_aggregates",
    "read_sql",
    "recompute_units_sql",
    "side_value",
    "unit_rows_covariates",
    "unit_rows_ctes",
    "unit_rows_from",
]

KEY_HASH = "toUInt32(cityHash64(a.event_name, a.event_id) % 4294967296)"
"""What ``folded`` holds per attributed row: its key within the unit (the table's sorting key is
experiment, event name, unit, event id), in 32 bits. A collision (about 10 keys of a unit against 2³²)
only makes the unit be recomputed in full, never a wrong number."""


def changed_units_sql(plan: UnitValuesPlan) -> str:
    """How many units the incremental build would recompute (0: nothing to do)."""
    return f"SELECT count() AS units FROM ({_changed(plan)})"  # nosec B608


def recompute_units_sql(plan: UnitValuesPlan) -> str:
    """After :func:`fold_sql`: how many units :func:`build_sql` with ``after_fold`` would recompute
    (``units``; 0: the fold did it all), how many the fold wrote (``folded``), and the attributed rows
    stored since the watermark (``rows``, their newest ``max_occurred_at``)."""
    return f"""
SELECT
    (SELECT count() FROM ({_changed(plan, after_fold=True)})) AS units,
    (SELECT count() FROM xp.unit_values WHERE experiment_key = {{experiment:String}}
        AND plan_key = {{plan_key:String}} AND version = {{version:UInt64}}) AS folded,
    rows,
    max_occurred_at
FROM
(
    SELECT count() AS rows, max(occurred_at) AS max_occurred_at
    FROM xp.attributed_events
    WHERE experiment_key = {{experiment:String}} AND event_name IN {{event_names:Array(String)}}
      AND attributed_at >= {{watermark:DateTime64(3, 'UTC')}}
)
"""  # nosec B608


_UNION = "\n        UNION DISTINCT\n        "


def moved_units(plan: UnitValuesPlan) -> list[str]:
    """The units whose population side (exposures) or CUPED covariate (raw events) has a row stored at
    or after the watermark: never folded, always recomputed in full."""
    parts = [
        "SELECT unit_id FROM xp.exposures WHERE experiment_key = {experiment:String}"
        " AND ingested_at >= {watermark:DateTime64(3, 'UTC')}",
    ]
    if plan.covariate_events:
        parts.append(
            "SELECT unit_id FROM xp.events WHERE event_name IN {covariate_events:Array(String)}"
            " AND ingested_at >= {watermark:DateTime64(3, 'UTC')}"
        )
    return parts


def _changed(plan: UnitValuesPlan, *, after_fold: bool = False) -> str:
    """The units with a row stored at or after the watermark in a table their values come from;
    ``after_fold``: less those :func:`fold_sql` wrote at this refresh's version (unless moved)."""
    attributed = (
        "SELECT unit_id FROM xp.attributed_events WHERE experiment_key = {experiment:String}"
        " AND event_name IN {event_names:Array(String)}"
        " AND attributed_at >= {watermark:DateTime64(3, 'UTC')}"
    )
    if after_fold:
        attributed += (
            " AND unit_id NOT IN (SELECT unit_id FROM xp.unit_values"
            " WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}"
            " AND version = {version:UInt64})"
        )
    return _UNION.join([attributed, *moved_units(plan)])


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


def _covariate_ctes(plan: UnitValuesPlan, only: str) -> str:
    """CTEs ``pre`` (each unit's raw events of the covariate events before its first exposure) and
    ``covariates`` (per covariate event: their count and Σ value)."""
    n = len(plan.covariate_events)
    per_event_counts = ", ".join(
        f"toUInt32(countIf(event_name = {{covariate_events:Array(String)}}[{i}]))" for i in range(1, n + 1)
    )
    per_event_totals = ", ".join(
        f"sumIf(number, event_name = {{covariate_events:Array(String)}}[{i}])" for i in range(1, n + 1)
    )
    number = rule.field_number(None, value_column="e.value")
    return f""",
    pre AS
    (
        SELECT e.unit_id AS unit_id, e.event_name AS event_name, {number} AS number
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value
            FROM xp.events FINAL
            WHERE event_name IN {{covariate_events:Array(String)}}{only}
        ) AS e
        INNER JOIN units AS u ON u.unit_id = e.unit_id
        WHERE {rule.before_exposure("e.occurred_at", "u.first_exposure")}
    ),
    covariates AS
    (
        SELECT unit_id, [{per_event_counts}] AS counts, [{per_event_totals}] AS totals
        FROM pre
        GROUP BY unit_id
    )"""  # nosec B608


def cell_aggregates(plan: UnitValuesPlan) -> tuple[str, str]:
    """The per-cell ``countIf`` list and the ``[sumIf, …]`` array of a unit's attributed rows."""
    hits = [
        rule.hit(
            "event_name",
            f"{{cell_events:Array(String)}}[{j}]",
            f"{{cell_windows:Array(Float64)}}[{j}]",
            "delay",
        )
        for j in range(1, len(plan.cells) + 1)
    ]
    counts = ", ".join(f"toUInt32(countIf({hit}))" for hit in hits)
    totals = ", ".join(f"sumIf(number, {hits[j]})" for j in plan.summed)
    return counts, (f"[{totals}]" if totals else "CAST([], 'Array(Float64)')")


def build_sql(plan: UnitValuesPlan, *, incremental: bool, after_fold: bool = False) -> str:
    """``INSERT INTO xp.unit_values`` one row per unit (every unit, or the changed ones; ``after_fold``:
    the changed ones :func:`fold_sql` did not write)."""
    ctes = unit_rows_ctes(plan, _changed(plan, after_fold=after_fold) if incremental else None)
    return f"""
INSERT INTO xp.unit_values (experiment_key, plan_key, unit_id, variation_id, eligible, multiple_variations,
    overridden, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, folded,
    version)
WITH
    {ctes}
SELECT
    {{experiment:String}}, {{plan_key:String}}, e.unit_id, e.variation_id,
    NOT e.multiple AND NOT e.overridden_, e.multiple, e.overridden_, e.first_exposure, s.attributes,
    u.counts, u.totals, {unit_rows_covariates(plan)}, u.folded, {{version:UInt64}}
{unit_rows_from(plan)}
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608


def unit_rows_ctes(plan: UnitValuesPlan, changed_sql: str | None) -> str:
    """The CTEs of a unit's row computed from all its rows (``units``, ``first_attributes``, ``matched``,
    ``per_unit``, with CUPED ``pre`` and ``covariates``): for every unit, or (``changed_sql``, the
    ``SELECT unit_id`` of CTE ``changed``) only for those."""
    incremental = changed_sql is not None
    only = " AND unit_id IN (SELECT unit_id FROM changed)" if incremental else ""
    only_a = "\n          AND a.unit_id IN (SELECT unit_id FROM changed)" if incremental else ""
    counts, totals_sql = cell_aggregates(plan)
    changed = f"changed AS\n    (\n        {changed_sql}\n    ),\n    " if incremental else ""
    covariate_ctes = _covariate_ctes(plan, only) if plan.covariate_events else ""
    matched = rule.attributed_events(
        "a.unit_id AS unit_id,\n"
        "            a.variation_id AS variation_id,\n"
        "            a.event_name AS event_name,\n"
        f"            toFloat64({rule.delay_ms()}) AS delay,\n"
        f"            {rule.field_number(None, value_column='a.value')} AS number,\n"
        f"            {KEY_HASH} AS key_hash",
        "{event_names:Array(String)}",
        until=False,
        only=only_a,
    )
    attributes = rule.first_exposure_attribute("first_attributes", "attributes", "attributes", only=only)
    return f"""{changed}{rule.units_cte(eligible_only=False, only=only)},
    {attributes},
    matched AS
    (
        {matched}
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, [{counts}] AS counts, {totals_sql} AS totals,
               groupArray(key_hash) AS folded
        FROM matched
        GROUP BY unit_id, variation_id
    ){covariate_ctes}"""  # nosec B608


def unit_rows_covariates(plan: UnitValuesPlan) -> str:
    """The covariate counts and totals of a row of :func:`unit_rows_from` (empty arrays without CUPED)."""
    return (
        "c.counts, c.totals"
        if plan.covariate_events
        else "CAST([], 'Array(UInt32)'), CAST([], 'Array(Float64)')"
    )


def unit_rows_from(plan: UnitValuesPlan) -> str:
    """``FROM units AS e`` joined with the other CTEs of :func:`unit_rows_ctes` (aliases u, s, c)."""
    covariate_join = "\nLEFT JOIN covariates AS c ON c.unit_id = e.unit_id" if plan.covariate_events else ""
    return (
        "FROM units AS e\n"
        "LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id\n"
        f"LEFT JOIN first_attributes AS s ON s.unit_id = e.unit_id{covariate_join}"
    )


def fold_sql(plan: UnitValuesPlan) -> str:
    """``INSERT INTO xp.unit_values`` the stored row plus the attributed rows stored since the watermark,
    for every unit whose new rows can be added (see the module docstring); the others are left out.

    Exact like a recomputation: a unit's counts and totals are sums over its attributed rows in its
    variation (``FINAL``: one row per key), the delay of a row is the row's own, so adding rows whose keys
    are new to the unit gives the same values. A new key already in ``folded`` (a re-send, or a row the
    previous refresh folded in the margin) or twice among the new rows cannot be added: the unit is left
    to the recomputation. Only the new rows and one ``FINAL`` pass over the stored rows are read.
    """
    counts, totals_sql = cell_aggregates(plan)
    moved = _UNION.join(moved_units(plan))
    number = rule.field_number(None, value_column="a.value")
    return f"""
INSERT INTO xp.unit_values (experiment_key, plan_key, unit_id, variation_id, eligible, multiple_variations,
    overridden, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, folded,
    version)
WITH
    moved AS
    (
        {moved}
    ),
    fresh AS
    (
        SELECT a.unit_id AS unit_id, a.variation_id AS variation_id, a.event_name AS event_name,
               toFloat64({rule.delay_ms()}) AS delay, {number} AS number, {KEY_HASH} AS key_hash
        FROM xp.attributed_events AS a
        WHERE a.experiment_key = {{experiment:String}}
          AND a.event_name IN {{event_names:Array(String)}}
          AND a.attributed_at >= {{watermark:DateTime64(3, 'UTC')}}
          AND a.unit_id NOT IN (SELECT unit_id FROM moved)
    ),
    by_variation AS
    (
        SELECT unit_id, variation_id, [{counts}] AS counts, {totals_sql} AS totals,
               groupArray(key_hash) AS keys
        FROM fresh
        GROUP BY unit_id, variation_id
    ),
    delta AS
    (
        SELECT unit_id, groupArray(variation_id) AS variations, groupArray(counts) AS counts_by,
               groupArray(totals) AS totals_by, groupArray(keys) AS keys_by, arrayFlatten(keys_by) AS all_keys
        FROM by_variation
        GROUP BY unit_id
    )
SELECT
    {{experiment:String}}, {{plan_key:String}}, s.unit_id, s.variation_id, s.eligible, s.multiple_variations,
    s.overridden, s.first_exposed_at, s.attributes,
    arrayMap(j -> toUInt32(s.counts[j] + d.counts_by[i][j]), range(1, {len(plan.cells) + 1})),
    arrayMap(j -> s.totals[j] + d.totals_by[i][j], range(1, {len(plan.summed) + 1})),
    s.covariate_counts, s.covariate_totals,
    arrayConcat(s.folded, d.keys_by[indexOf(d.variations, s.variation_id) AS i]),
    {{version:UInt64}}
FROM
(
    SELECT unit_id, variation_id, eligible, multiple_variations, overridden, first_exposed_at, attributes,
           counts, totals, covariate_counts, covariate_totals, folded
    FROM xp.unit_values FINAL
    WHERE experiment_key = {{experiment:String}} AND plan_key = {{plan_key:String}}
) AS s
INNER JOIN delta AS d ON d.unit_id = s.unit_id
WHERE length(arrayDistinct(d.all_keys)) = length(d.all_keys) AND NOT hasAny(s.folded, d.all_keys)
SETTINGS optimize_move_to_prewhere_if_final = 1
"""  # nosec B608


def side_value(plan: UnitValuesPlan, k: int) -> str:
    """SQL for side ``k``'s per-unit value from a stored row's ``counts``/``totals`` (1-based arrays)."""
    event, aggregation, window = plan.sides[k]
    j = plan.cells.index((event, window))
    total = f"totals[{plan.summed.index(j) + 1}]" if j in plan.summed else "0."
    return rule.value(aggregation, count=f"counts[{j + 1}]", total=total)


def covariate_value(slot: CovariateSlot) -> str:
    """SQL for a covariate slot's per-unit value from ``covariate_counts``/``covariate_totals``."""
    i = slot.event + 1
    return rule.value(slot.aggregation, count=f"covariate_counts[{i}]", total=f"covariate_totals[{i}]")


def read_aggregates(plan: UnitValuesPlan) -> tuple[str, str]:
    """The per-unit ``SELECT`` list of :func:`read_sql` (``segment``, ``variation_id``, ``v`` and the
    covariate arrays, over a row's columns) and its aggregates per segment × variation."""
    sides = ", ".join(side_value(plan, k) for k in range(len(plan.sides)))
    crosses = [f"sum(v[{a + 1}] * v[{b + 1}])" for a, b in plan.batch.crosses]
    crosses_sql = f"[{', '.join(crosses)}]" if crosses else "CAST([], 'Array(Float64)')"
    covariate_select, covariate_inner = "", ""
    if plan.covariate_slots:
        xs = ", ".join(covariate_value(slot) for slot in plan.covariate_slots)
        ys = ", ".join(f"v[{slot.side + 1}]" for slot in plan.covariate_slots)
        has = ", ".join(f"toUInt64(covariate_counts[{slot.event + 1}] > 0)" for slot in plan.covariate_slots)
        covariate_inner = f", [{xs}] AS x, [{ys}] AS y, [{has}] AS h"
        covariate_select = """,
    sumForEach(x) AS covariate_sums,
    sumForEach(arrayMap(t -> t * t, x)) AS covariate_squares,
    sumForEach(arrayMap((s, t) -> s * t, y, x)) AS covariate_crosses,
    sumForEach(h) AS covariate_units"""
    select = f"""if({{dimension:String}} = '', '', attributes[{{dimension:String}}]) AS segment,
        variation_id,
        [{sides}] AS v{covariate_inner}"""
    aggregate = f"""segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(t -> t * t, v)) AS squares,
    {crosses_sql} AS crosses{covariate_select}"""
    return select, aggregate


def read_sql(plan: UnitValuesPlan) -> str:
    """Per segment × variation: units, Σ/Σ² of every side, Σa·b of every ratio, CUPED covariate sums.

    The rows of the live scan (same columns), plus ``covariate_sums``, ``covariate_squares``,
    ``covariate_crosses`` (Σ side·covariate) and ``covariate_units`` (units with a pre-exposure event)
    per covariate slot.
    """
    select, aggregate = read_aggregates(plan)
    return f"""
SELECT
    {aggregate}
FROM
(
    SELECT
        {select}
    FROM xp.unit_values FINAL
    WHERE experiment_key = {{experiment:String}} AND plan_key = {{plan_key:String}} AND eligible
      AND {rule.first_exposed_in_window("first_exposed_at", "      ")}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id
"""  # nosec B608
