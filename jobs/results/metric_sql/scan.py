"""The live-scan queries of results: per-variation sums straight from the attributed events.

Two shapes, both generated from :mod:`~jobs.results.metric_sql.rule`:

- :func:`experiment_sums_sql` (``BatchPlan.sql()``): every metric whose sides are ``binary``, ``count``
  or ``sum`` of the event's ``value`` in one scan, per segment × variation. A unit's count (and total,
  for ``sum`` sides) of one distinct (event, window) *cell* is computed once (``c{j}``, ``t{j}``) and
  serves every side over that cell (``v{k}``); rows: ``segment``, ``variation_id``, ``units``,
  ``sums[k] = Σ v_k``, ``squares[k] = Σ v_k²``, ``crosses[p] = Σ v_a·v_b`` of each ratio;
- :func:`metric_sums_sql`: one metric (any aggregation, a ``properties.NAME`` value field) per query, its
  sides ``a`` (and ``b``, a ratio's denominator) bound by :func:`metric_parameters`; rows per variation
  (with ``segment``: per segment × variation): ``units``, ``units_with_events`` (≥ 1 event on side a),
  ``sum_a``, ``sum_a_squares``, ``sum_b``, ``sum_b_squares``, ``cross_sum`` = Σa·b. With ``cuped`` (one
  binomial or mean metric, side a only), the CUPED covariate x (Deng et al. 2013): the same value over
  the unit's raw events before its first exposure (``xp.events``, so always as fresh as the metric;
  decision 0014), adding ``units_with_covariate``, ``sum_x``, ``sum_x_squares``, ``cross_sum_ax``;
  :func:`cuped_parameters` binds it.

grain: (segment ×) variation_id, one experiment · time: first_exposed_at (units), occurred_at (events) ·
engine: xp.unit_exposures (AggregatingMergeTree, merged here), xp.attributed_events (ReplacingMergeTree,
FINAL), xp.exposures (segments), xp.events (properties, covariates). Pure; the warehouse calls are in
:mod:`jobs.results.sums`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from assignment.metrics_catalog import Aggregation, MetricDefinition, MetricType
from jobs.results.metric_sql import rule
from xpcore.errors import ValidationError

__all__ = [
    "cuped_parameters",
    "experiment_sums_sql",
    "metric_parameters",
    "metric_sums_sql",
]

_SEGMENTS = rule.first_exposure_attribute(
    "segments", "attributes[{dimension:String}]", "segment", guard=" AND {dimension:String} != ''"
)


def experiment_sums_sql(
    sides: Sequence[tuple[str, str, float]],
    crosses: Sequence[tuple[int, int]],
    cells: Sequence[tuple[str, float]],
) -> str:
    """The one-scan query of a :class:`~jobs.results.batch.BatchPlan`: per-unit columns ``c{j}``/``t{j}``
    per cell (j 1-based) and ``v{k}`` per side (k 1-based). Parameters: ``experiment``, ``since``,
    ``until``, ``event_names`` (distinct), ``cell_events``, ``cell_windows``, ``dimension``."""
    summed = {cells.index((event, window)) for event, aggregation, window in sides if aggregation == "sum"}
    per_unit = []
    for j in range(1, len(cells) + 1):
        hit = rule.hit(
            "event_name",
            f"{{cell_events:Array(String)}}[{j}]",
            f"{{cell_windows:Array(Float64)}}[{j}]",
            "delay",
        )
        per_unit.append(f"countIf({hit}) AS c{j}")
        if j - 1 in summed:
            per_unit.append(f"sumIf(number, {hit}) AS t{j}")
    values, sums, squares = [], [], []
    for k, (event, aggregation, window) in enumerate(sides, start=1):
        j = cells.index((event, window)) + 1
        values.append(rule.value(aggregation, count=f"c{j}", total=f"t{j}") + f" AS v{k}")
        sums.append(f"sum(v{k})")
        squares.append(f"sum(v{k} * v{k})")
    cross = [f"sum(v{a + 1} * v{b + 1})" for a, b in crosses]
    crosses_sql = f"[{', '.join(cross)}]" if cross else "CAST([], 'Array(Float64)')"
    matched = rule.attributed_events(
        "a.unit_id AS unit_id,\n"
        "            a.variation_id AS variation_id,\n"
        "            a.event_name AS event_name,\n"
        f"            toFloat64({rule.delay_ms()}) AS delay,\n"
        f"            {rule.field_number(None, value_column='a.value')} AS number",
        "{event_names:Array(String)}",
        until=True,
    )
    return f"""
WITH
    {rule.units_cte(eligible_only=True)},
    {_SEGMENTS},
    matched AS
    (
        {matched}
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


def _side_parameter(side: str, name: str) -> str:
    types = {"event": "String", "aggregation": "String", "property": "String", "window": "Float64"}
    suffix = "_seconds" if name == "window" else ""
    return f"{{{name}_{side}{suffix}:{types[name]}}}"


def _properties_cte(sides: Sequence[str]) -> str:
    """CTE ``properties``: the properties of the raw events a ``properties.NAME`` side reads."""
    conditions = "\n           OR ".join(
        f"(event_name = {_side_parameter(s, 'event')} AND {_side_parameter(s, 'property')} != '')"
        for s in sides
    )
    return f"""properties AS
    (
        SELECT event_id, any(properties) AS properties
        FROM xp.events
        WHERE {conditions}
        GROUP BY event_id
    )"""  # nosec B608 - no input in the text (package docstring)


def _per_unit_value(side: str, *, count: str, total: str, distinct: str) -> str:
    return rule.value_by_parameter(
        _side_parameter(side, "aggregation"), count=count, total=total, distinct=distinct, indent=" " * 12
    )


def metric_sums_sql(*, segment: bool = False, cuped: bool = False) -> str:
    """The per-metric query (see the module docstring); ``segment`` adds the breakdown by the
    ``dimension`` parameter, ``cuped`` the covariate (side a only; not with ``segment``: segments are
    read without CUPED, decision 0014)."""
    if segment and cuped:
        raise ValueError("the per-metric query has no CUPED segment form")
    sides = ("a",) if cuped else ("a", "b")
    flags, fields, values = [], [], []
    for s in sides:
        event, window, prop = (_side_parameter(s, n) for n in ("event", "window", "property"))
        flags.append(f"{rule.hit('a.event_name', event, window, rule.delay_ms())} AS in_{s}")
        event_columns = {"value_column": "a.value", "properties_column": "p.properties"}
        fields.append(f"{rule.field_text(prop, **event_columns)} AS text_{s}")
        fields.append(f"{rule.field_number(prop, **event_columns)} AS number_{s}")
        value = _per_unit_value(
            s,
            count=f"countIf(in_{s})",
            total=f"sumIf(number_{s}, in_{s})",
            distinct=f"uniqExactIf(text_{s}, in_{s})",
        )
        values.append(f"{value} AS {s}")
    matched = rule.attributed_events(
        ",\n            ".join(["a.unit_id AS unit_id", "a.variation_id AS variation_id", *flags, *fields]),
        f"({', '.join(_side_parameter(s, 'event') for s in sides)})",
        until=True,
        join="\n        LEFT JOIN properties AS p ON p.event_id = a.event_id",
    )
    ctes = [rule.units_cte(eligible_only=True)]
    if segment:
        ctes.append(_SEGMENTS)
    ctes.append(_properties_cte(sides))
    ctes.append(f"matched AS\n    (\n        {matched}\n    )")
    per_unit_values = ",\n            ".join(values)
    ctes.append(
        f"""per_unit AS
    (
        SELECT
            unit_id,
            variation_id,
            countIf(in_a) AS events_a,
            {per_unit_values}
        FROM matched
        GROUP BY unit_id, variation_id
    )"""  # nosec B608 - no input in the text (package docstring)
    )
    columns = [
        "e.variation_id AS variation_id",
        "toUInt64(count()) AS units",
        "toUInt64(countIf(u.events_a > 0)) AS units_with_events",
        "sum(u.a) AS sum_a",
        "sum(u.a * u.a) AS sum_a_squares",
    ]
    joins = ["LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id"]
    group, order = "e.variation_id", "variation_id"
    if cuped:
        ctes.extend(_covariate_ctes())
        columns[3:3] = ["toUInt64(countIf(c.events_x > 0)) AS units_with_covariate"]
        columns += ["sum(c.x) AS sum_x", "sum(c.x * c.x) AS sum_x_squares", "sum(u.a * c.x) AS cross_sum_ax"]
        joins.append("LEFT JOIN covariates AS c ON c.unit_id = e.unit_id")
    else:
        columns += ["sum(u.b) AS sum_b", "sum(u.b * u.b) AS sum_b_squares", "sum(u.a * u.b) AS cross_sum"]
    if segment:
        columns.insert(0, "s.segment AS segment")
        joins.append("LEFT JOIN segments AS s ON s.unit_id = e.unit_id")
        group, order = f"s.segment, {group}", f"segment, {order}"
    ctes_sql, columns_sql, joins_sql = ",\n    ".join(ctes), ",\n    ".join(columns), "\n".join(joins)
    return f"""
WITH
    {ctes_sql}
SELECT
    {columns_sql}
FROM eligible AS e
{joins_sql}
GROUP BY {group}
ORDER BY {order}
SETTINGS join_use_nulls = 0
"""  # nosec B608


def _covariate_ctes() -> list[str]:
    """CTEs ``pre`` (the unit's raw events of side a before its first exposure) and ``covariates``."""
    prop = _side_parameter("a", "property")
    columns = {"value_column": "e.value", "properties_column": "e.properties"}
    x = _per_unit_value("a", count="count()", total="sum(number_x)", distinct="uniqExact(text_x)")
    return [
        f"""pre AS
    (
        SELECT
            e.unit_id AS unit_id,
            {rule.field_text(prop, **columns)} AS text_x,
            {rule.field_number(prop, **columns)} AS number_x
        FROM
        (
            SELECT unit_id, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name = {_side_parameter("a", "event")}
              AND occurred_at < {rule.UNTIL}
        ) AS e
        INNER JOIN eligible AS u ON u.unit_id = e.unit_id
        WHERE {rule.before_exposure("e.occurred_at", "u.first_exposure")}
    )""",  # nosec B608 - no input in the text (package docstring)
        f"""covariates AS
    (
        SELECT
            unit_id,
            count() AS events_x,
            {x} AS x
        FROM pre
        GROUP BY unit_id
    )""",  # nosec B608 - no input in the text (package docstring)
    ]


def _side(metric: MetricDefinition, where: str) -> tuple[str, str, str, float]:
    """(event, aggregation, property, window seconds; 0 = none) of an event metric."""
    if metric.type is MetricType.RATIO or metric.event_name is None or metric.aggregation is None:
        raise ValidationError(f"{where}: metric {metric.name!r} is not an event metric")
    field = metric.value_field or "value"
    prop = field.removeprefix("properties.") if field.startswith("properties.") else ""
    window = metric.window_hours * 3600.0 if metric.window_hours is not None else 0.0
    return metric.event_name, metric.aggregation.value, prop, window


def metric_parameters(
    metric: MetricDefinition,
    catalog: Mapping[str, MetricDefinition],
    *,
    experiment: str,
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    """The bound parameters of :func:`metric_sums_sql` for ``metric`` (``catalog``: ratio parts by
    name; a non-ratio metric's side b is an empty event name). With ``segment``, add ``dimension``.

    ValidationError for a ratio whose parts are not event metrics (a ratio of ratios).
    """
    where = f"experiment {experiment!r}"
    if metric.type is MetricType.RATIO:
        numerator = catalog.get(metric.numerator or "")
        denominator = catalog.get(metric.denominator or "")
        if numerator is None or denominator is None:
            raise ValidationError(f"{where}: ratio metric {metric.name!r} refers to an unknown metric")
        a, b = _side(numerator, where), _side(denominator, where)
    else:
        a, b = _side(metric, where), ("", Aggregation.COUNT.value, "", 0.0)
    return {
        "experiment": experiment,
        "since": since,
        "until": until,
        "event_a": a[0],
        "aggregation_a": a[1],
        "property_a": a[2],
        "window_a_seconds": a[3],
        "event_b": b[0],
        "aggregation_b": b[1],
        "property_b": b[2],
        "window_b_seconds": b[3],
    }


def cuped_parameters(parameters: Mapping[str, Any], covariate_days: float) -> dict[str, Any]:
    """The parameters of ``metric_sums_sql(cuped=True)`` from :func:`metric_parameters`' (side a, the
    window) and the covariate window in days."""
    kept = ("experiment", "since", "until", "event_a", "aggregation_a", "property_a", "window_a_seconds")
    return {**{k: parameters[k] for k in kept}, "covariate_seconds": covariate_days * 86400.0}
