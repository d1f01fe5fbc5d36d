"""Exact-now results from ``xp.unit_values`` without writing: the stored rows overlaid with the new rows.

Decision 0100 (issue #22 item 3). :func:`overlay_read_sql` gives the rows of
:func:`~jobs.results.metric_sql.unit_values.read_sql` (sufficient statistics per segment × variation, plus
``newest``: the newest ``occurred_at`` among the attributed rows stored since ``{watermark}``) as if a
refresh had just run, in one statement that writes nothing:

- ``fresh``: the attributed rows stored since the watermark (no ``FINAL``: every stored version), per unit
  and variation their counts, totals and keys (``delta``), as :func:`fold_sql` adds them;
- ``addable``: the units whose new rows can simply be added to their stored row (decision 0099's rule): a
  stored row, no exposure (or CUPED raw event) of the unit stored since, no new key already in its
  ``folded`` keys, no key twice among its new rows. Only the ``folded`` column of the touched units is
  read for this;
- ``changed``: the other touched units (new exposures, new units, re-sent or already folded keys): their
  rows are **recomputed inside the read** from all their rows (the CTEs of a refresh, restricted to them);
- the read: every stored row (``FINAL``) of a unit not in ``changed``, plus its delta if any, ``UNION
  ALL`` the recomputed rows, aggregated like ``read_sql``.

Exact like a refresh then a read: a unit's row is either its stored row plus rows whose keys are new to it
(the fold's argument, decision 0099), or recomputed from all its rows. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.results.metric_sql import rule
from jobs.results.metric_sql.unit_values import (
    KEY_HASH,
    cell_aggregates,
    moved_units,
    read_aggregates,
    unit_rows_covariates,
    unit_rows_ctes,
    unit_rows_from,
)

if TYPE_CHECKING:
    from jobs.unit_values.plan import UnitValuesPlan

__all__ = ["FINGERPRINT", "overlay_plan_sql", "overlay_read_sql"]

_RECOMPUTED = (
    "SELECT unit_id FROM moved UNION DISTINCT"
    " SELECT unit_id FROM fresh WHERE unit_id NOT IN (SELECT unit_id FROM addable)"
)
"""The touched units whose rows the read recomputes from all their rows (not ``addable``)."""
_STORED = (
    "FROM xp.unit_values FINAL\n"
    "        WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}"
)


FINGERPRINT = "tuple(count(), sum(cityHash64(event_name, event_id, attributed_at)))"
"""Over the rows stored since the watermark: the plan and the read saw the same rows (a row stored or
merged away in between changes it; the caller then refreshes instead)."""


_NEWEST_VERSION = (
    "SELECT max(version) FROM xp.unit_values"
    " WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}"
)
"""The newest stored version: a refresh between the plan and the read changes it (the caller then
refreshes instead of adding rows the refresh may have folded in)."""


def _delta_ctes(plan: UnitValuesPlan) -> str:
    """CTEs ``fresh`` (the attributed rows stored since the watermark, every stored version), per unit and
    variation their cell counts, totals and keys (``by_variation``), and per unit (``delta``)."""
    counts, totals_sql = cell_aggregates(plan)
    number = rule.field_number(None, value_column="a.value")
    return f"""fresh AS
    (
        SELECT a.unit_id AS unit_id, a.variation_id AS variation_id, a.event_name AS event_name,
               toFloat64({rule.delay_ms()}) AS delay, {number} AS number, {KEY_HASH} AS key_hash,
               a.occurred_at AS occurred_at, a.event_id AS event_id, a.attributed_at AS attributed_at
        FROM xp.attributed_events AS a
        WHERE a.experiment_key = {{experiment:String}}
          AND a.event_name IN {{event_names:Array(String)}}
          AND a.attributed_at >= {{watermark:DateTime64(3, 'UTC')}}
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
               groupArray(totals) AS totals_by, arrayFlatten(groupArray(keys)) AS all_keys
        FROM by_variation
        GROUP BY unit_id
    )"""  # nosec B608


def overlay_plan_sql(plan: UnitValuesPlan) -> str:
    """One row: the units the read must recompute (``recompute``: touched since the watermark and not
    addable, see the module docstring), the :data:`FINGERPRINT` of the rows stored since the watermark
    (``seen``), their newest ``occurred_at`` (``newest``) and how many units they touch (``touched``)."""
    moved = "\n        UNION DISTINCT\n        ".join(moved_units(plan))
    return f"""
WITH
    moved AS
    (
        {moved}
    ),
    {_delta_ctes(plan)},
    addable AS
    (
        SELECT d.unit_id AS unit_id
        FROM delta AS d
        INNER JOIN
        (
            SELECT unit_id, folded
            {_STORED} AND unit_id IN (SELECT unit_id FROM fresh)
        ) AS f ON f.unit_id = d.unit_id
        WHERE length(arrayDistinct(d.all_keys)) = length(d.all_keys) AND NOT hasAny(f.folded, d.all_keys)
          AND d.unit_id NOT IN (SELECT unit_id FROM moved)
    )
SELECT
    (SELECT groupArray(unit_id) FROM ({_RECOMPUTED})) AS recompute,
    (SELECT {FINGERPRINT} FROM fresh) AS seen,
    ({_NEWEST_VERSION}) AS stored,
    (SELECT max(occurred_at) FROM fresh) AS newest,
    (SELECT uniqExact(unit_id) FROM fresh) AS touched
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608


def overlay_read_sql(plan: UnitValuesPlan, *, recompute: bool) -> str:
    """The rows of ``read_sql`` over the stored values with the rows stored since ``{watermark}`` added
    (the units of ``{recompute:Array(String)}`` recomputed from all their rows instead, when
    ``recompute``), plus ``seen``: the :data:`FINGERPRINT` of the rows it added."""
    cells, summed = len(plan.cells), len(plan.summed)
    added_counts = f"arrayMap(j -> toUInt32(stored_counts[j] + counts_by[i][j]), range(1, {cells + 1}))"
    added_totals = f"arrayMap(j -> stored_totals[j] + totals_by[i][j], range(1, {summed + 1}))"
    select, aggregate = read_aggregates(plan)
    ctes = _delta_ctes(plan)
    branch = ""
    if recompute:
        ctes += ",\n    " + unit_rows_ctes(plan, "SELECT arrayJoin({recompute:Array(String)}) AS unit_id")
        branch = f"""
        UNION ALL
        SELECT e.variation_id, NOT e.multiple AND NOT e.overridden_, e.first_exposure, s.attributes,
               u.counts, u.totals, {unit_rows_covariates(plan)}
        {unit_rows_from(plan).replace(chr(10), chr(10) + "        ")}"""
    return f"""
WITH
    {ctes}
SELECT
    {aggregate},
    (SELECT {FINGERPRINT} FROM fresh) AS seen,
    ({_NEWEST_VERSION}) AS stored
FROM
(
    SELECT
        {select}
    FROM
    (
        SELECT variation_id, eligible, first_exposed_at, attributes, counts, totals, covariate_counts,
               covariate_totals
        {_STORED} AND unit_id NOT IN {{recompute:Array(String)}}
          AND unit_id NOT IN (SELECT unit_id FROM delta)
        UNION ALL
        SELECT variation_id, eligible, first_exposed_at, attributes,
               if(i = 0, stored_counts, {added_counts}) AS counts,
               if(i = 0, stored_totals, {added_totals}) AS totals,
               covariate_counts, covariate_totals
        FROM
        (
            SELECT s.variation_id AS variation_id, s.eligible AS eligible,
                   s.first_exposed_at AS first_exposed_at, s.attributes AS attributes,
                   s.counts AS stored_counts, s.totals AS stored_totals,
                   s.covariate_counts AS covariate_counts, s.covariate_totals AS covariate_totals,
                   d.counts_by AS counts_by, d.totals_by AS totals_by,
                   indexOf(d.variations, s.variation_id) AS i
            FROM
            (
                SELECT unit_id, variation_id, eligible, first_exposed_at, attributes, counts, totals,
                       covariate_counts, covariate_totals
                {_STORED} AND unit_id NOT IN {{recompute:Array(String)}}
                  AND unit_id IN (SELECT unit_id FROM delta)
            ) AS s
            INNER JOIN delta AS d ON d.unit_id = s.unit_id
        ){branch}
    )
    WHERE eligible AND {rule.first_exposed_in_window("first_exposed_at", "      ")}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
"""  # nosec B608
