"""Exact-now results from ``xp.unit_values`` without writing: the stored rows overlaid with the new rows.

Decision 0100 (issue #22 item 3). The rows of :func:`~jobs.results.metric_sql.unit_values.read_sql`
(sufficient statistics per segment × variation) as if a refresh had just run, without writing:

- :func:`overlay_read_sql`, one statement. ``fresh``: the attributed rows stored since ``{watermark}``
  (no ``FINAL``: every stored version), per unit and variation their cell counts, totals and keys
  (``delta``), as :func:`~jobs.results.metric_sql.unit_values.fold_sql` adds them. Then, ``kind`` 0 rows
  (the statistics) over: every stored row (``FINAL``) of a unit with no new row and no exposure (or
  CUPED raw event) stored since, plus each touched unit's stored row **plus its delta** when the delta can
  simply be added (decision 0099's rule: a stored row, no exposure or covariate event since, no new key
  in its ``folded`` keys, no key twice among its new rows); and ``kind`` 1 rows: in ``recompute``, every
  other touched unit (a new unit, a new exposure, a re-sent or already folded key), left out of the
  statistics;
- :func:`recompute_read_sql`: the same statistics over those units only, their rows **recomputed** from
  all their rows (the CTEs of a refresh restricted to ``{recompute:Array(String)}``).

The two sets of units are disjoint and the statistics are sums over units, so the caller adds the rows of
both per segment and variation. Exact like a refresh then a read: a unit's row is either its stored row
plus rows whose keys are new to it (the fold's argument, decision 0099) or recomputed from all its rows.
Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.results.metric_sql import rule
from jobs.results.metric_sql.unit_values import (
    KEY_HASH,
    cell_aggregates,
    moved_units,
    read_aggregates,
    unit_rows_ctes,
    unit_rows_from,
)

if TYPE_CHECKING:
    from jobs.unit_values.plan import UnitValuesPlan

__all__ = ["added_arrays", "overlay_read_sql", "recompute_read_sql"]

_STORED = (
    "FROM xp.unit_values FINAL\n"
    "        WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}"
)
_NO_COVARIATES = ("CAST([], 'Array(UInt32)')", "CAST([], 'Array(Float64)')")
_COLUMNS = (
    "variation_id, eligible, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals"
)


def added_arrays(plan: UnitValuesPlan) -> tuple[str, str]:
    """A touched unit's stored ``counts`` and ``totals`` plus its delta in the stored row's variation
    (zeros when the delta has none; an empty stored row, a unit without one, is recomputed anyway).
    Pointwise array ``+`` (ClickHouse 23.8+; decision 0104): no lambda capturing the delta's nested arrays
    per element, as 0100's ``arrayMap(j -> …, range(…))`` did. ``arrayResize`` pads to the plan's width, so
    the two sides always have equal sizes, as ``+`` requires."""
    cells, summed = len(plan.cells), len(plan.summed)
    i = "indexOf(d.variations, s.variation_id)"
    counts = f"CAST(arrayResize(s.counts, {cells}) + arrayResize(d.counts_by[{i}], {cells}), 'Array(UInt32)')"
    if not summed:
        return counts, "CAST([], 'Array(Float64)')"
    return counts, f"arrayResize(s.totals, {summed}) + arrayResize(d.totals_by[{i}], {summed})"


def overlay_read_sql(plan: UnitValuesPlan) -> str:
    """``kind`` 0 rows: the statistics of ``read_sql`` over the units answered from their stored row (plus
    the rows stored since ``{watermark}``); ``kind`` 1 rows: ``recompute``, the touched units left out
    (see the module docstring), and ``newest``, the newest ``occurred_at`` among the new rows."""
    counts, totals_sql = cell_aggregates(plan)
    number = rule.field_number(None, value_column="a.value")
    moved = "\n        UNION DISTINCT\n        ".join(moved_units(plan))
    added_counts, added_totals = added_arrays(plan)
    select, aggregate = read_aggregates(plan)
    return f"""
WITH
    moved AS
    (
        {moved}
    ),
    fresh AS
    (
        SELECT a.unit_id AS unit_id, a.variation_id AS variation_id, a.event_name AS event_name,
               toFloat64({rule.delay_ms()}) AS delay, {number} AS number, {KEY_HASH} AS key_hash,
               a.occurred_at AS occurred_at
        FROM xp.attributed_events AS a
        WHERE a.experiment_key = {{experiment:String}}
          AND a.event_name IN {{event_names:Array(String)}}
          AND a.attributed_at >= {{watermark:DateTime64(3, 'UTC')}}
    ),
    by_variation AS
    (
        SELECT unit_id, variation_id, [{counts}] AS counts, {totals_sql} AS totals,
               groupArray(key_hash) AS keys, max(occurred_at) AS newest
        FROM fresh
        GROUP BY unit_id, variation_id
    ),
    delta AS
    (
        SELECT unit_id, groupArray(variation_id) AS variations, groupArray(counts) AS counts_by,
               groupArray(totals) AS totals_by, arrayFlatten(groupArray(keys)) AS all_keys,
               max(newest) AS newest
        FROM by_variation
        GROUP BY unit_id
    )
SELECT
    kind,
    {aggregate},
    arraySort(groupArrayIf(unit, kind = 1)) AS recompute,
    max(newest) AS newest
FROM
(
    SELECT
        kind, unit, newest,
        {select}
    FROM
    (
        SELECT 0 AS kind, '' AS unit, toDateTime64(0, 3, 'UTC') AS newest, {_COLUMNS}
        {_STORED}
          AND unit_id NOT IN (SELECT unit_id FROM fresh) AND unit_id NOT IN (SELECT unit_id FROM moved)
        UNION ALL
        SELECT
            if(s.unit_id = '' OR length(arrayDistinct(d.all_keys)) != length(d.all_keys)
               OR hasAny(s.folded, d.all_keys) OR d.unit_id IN (SELECT unit_id FROM moved), 1, 0) AS kind,
            d.unit_id AS unit, d.newest AS newest, s.variation_id AS variation_id, s.eligible AS eligible,
            s.first_exposed_at AS first_exposed_at, s.attributes AS attributes,
            {added_counts} AS counts,
            {added_totals} AS totals,
            s.covariate_counts AS covariate_counts, s.covariate_totals AS covariate_totals
        FROM
        (
            SELECT unit_id, {_COLUMNS}, folded
            {_STORED} AND unit_id IN (SELECT unit_id FROM fresh)
        ) AS s
        RIGHT JOIN delta AS d ON d.unit_id = s.unit_id
        UNION ALL
        SELECT 1, unit_id, toDateTime64(0, 3, 'UTC'), 0, false, toDateTime64(0, 3, 'UTC'),
               CAST(map(), 'Map(String, String)'), {_NO_COVARIATES[0]}, {_NO_COVARIATES[1]},
               {_NO_COVARIATES[0]}, {_NO_COVARIATES[1]}
        FROM moved
        WHERE unit_id NOT IN (SELECT unit_id FROM fresh)
    )
    WHERE kind = 1 OR (eligible AND {rule.first_exposed_in_window("first_exposed_at", "      ")})
)
GROUP BY kind, segment, variation_id
ORDER BY kind, segment, variation_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608


def recompute_read_sql(plan: UnitValuesPlan) -> str:
    """The statistics of ``read_sql`` over the units of ``{recompute:Array(String)}``, their rows
    recomputed from all their rows (as a refresh would write them)."""
    select, aggregate = read_aggregates(plan)
    ctes = unit_rows_ctes(plan, "SELECT arrayJoin({recompute:Array(String)}) AS unit_id")
    covariates = ("c.counts", "c.totals") if plan.covariate_events else _NO_COVARIATES
    return f"""
WITH
    {ctes}
SELECT
    {aggregate}
FROM
(
    SELECT
        {select}
    FROM
    (
        SELECT e.variation_id AS variation_id, NOT e.multiple AND NOT e.overridden_ AS eligible,
               e.first_exposure AS first_exposed_at, s.attributes AS attributes, u.counts AS counts,
               u.totals AS totals, {covariates[0]} AS covariate_counts, {covariates[1]} AS covariate_totals
        {unit_rows_from(plan).replace(chr(10), chr(10) + "        ")}
    )
    WHERE eligible AND {rule.first_exposed_in_window("first_exposed_at", "      ")}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608
