"""The rule of a unit's metric value, as SQL fragments: which units count, which events count, what value.

Every results query is generated from these fragments (:mod:`~jobs.results.metric_sql.scan` for the live
scan, :mod:`~jobs.results.metric_sql.unit_values` for ``xp.unit_values``), so the rule is written once:

- **units** (:func:`units_cte`): the units of ``xp.unit_exposures`` (merged) of one experiment, in the
  variation of their first exposure. A unit *counts* (:data:`ELIGIBLE`) when it was seen in exactly one
  variation (:data:`MULTIPLE_VARIATIONS` false) and never overridden (:data:`OVERRIDDEN` false), and its
  first exposure is in ``[since, until)`` (:func:`first_exposed_in_window`). Every such unit counts, with
  value 0 when it has no event (``LEFT JOIN``; ``join_use_nulls = 0``);
- **segment** (:func:`first_exposure_attribute`): the attribute of the unit's first exposure
  (``xp.exposures``);
- **events** (:func:`attributed_events`): ``xp.attributed_events`` read ``FINAL`` (a re-sent attribution
  counts once), of the experiment, the metric's event names, ``occurred_at < until`` on the live scan.
  An event *hits* a metric side (:func:`hit`) when its name is the side's event and it occurred within the
  side's window after the first exposure (:func:`within_window`; window 0: none);
- **value** (:func:`value`): per unit and side, from the unit's hits: ``binary`` 1 if ≥ 1 hit else 0,
  ``count`` the hits, ``sum`` Σ of the value field, ``unique`` the distinct value-field values; the value
  field is the event's ``value`` (NULL = 0) or ``properties[NAME]`` (:func:`field_number`);
- **covariate** (CUPED, :func:`before_exposure`): the same value over the unit's raw events of
  ``xp.events`` (``FINAL``) in ``[first exposure - covariate_seconds, first exposure)``.

Only our own names (aggregations, CTE and column names, 1-based indexes) shape the text; every value is a
bound parameter. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AGGREGATIONS",
    "ELIGIBLE",
    "MULTIPLE_VARIATIONS",
    "OVERRIDDEN",
    "SINCE",
    "UNTIL",
    "attributed_events",
    "before_exposure",
    "delay_ms",
    "field_number",
    "field_text",
    "first_exposed_in_window",
    "first_exposure_attribute",
    "hit",
    "units_cte",
    "value",
    "value_by_parameter",
    "within_window",
]

MULTIPLE_VARIATIONS = "min(min_variation_id) != max(max_variation_id)"
"""Over a unit's ``xp.unit_exposures`` rows: it was exposed to more than one variation."""
OVERRIDDEN = "max(overridden) != 0"
"""Over a unit's ``xp.unit_exposures`` rows: one of its exposures was a forced (overridden) variation."""
ELIGIBLE = f"NOT ({MULTIPLE_VARIATIONS}) AND NOT ({OVERRIDDEN})"
"""A unit counts: one variation, never overridden."""

UNTIL = "{until:DateTime64(3, 'UTC')}"
"""The end of the window (bound parameter): units first exposed before it, events that occurred before it."""
SINCE = "{since:DateTime64(3, 'UTC')}"
"""The start of the window (bound parameter): units first exposed at or after it."""

_VALUES: Mapping[str, str] = {
    "binary": "toFloat64({count} > 0)",
    "count": "toFloat64({count})",
    "sum": "{total}",
    "unique": "toFloat64({distinct})",
}
AGGREGATIONS = tuple(_VALUES)
"""The aggregations a metric side may have (:class:`assignment.metrics_catalog.Aggregation` values)."""


def value(aggregation: str, *, count: str, total: str = "0.", distinct: str = "0") -> str:
    """A unit's value of one side with ``aggregation`` (one of :data:`AGGREGATIONS`), given SQL for its
    number of hits, the Σ of their value field and the number of distinct values."""
    return _VALUES[aggregation].format(count=count, total=total, distinct=distinct)


def value_by_parameter(parameter: str, *, count: str, total: str, distinct: str, indent: str = "") -> str:
    """:func:`value` when the aggregation is a bound parameter (the per-metric queries): one branch per
    aggregation, 0 for anything else (``indent``: of the expression's first line)."""
    branches = "".join(
        f"\n{indent}    {parameter} = '{name}', {value(name, count=count, total=total, distinct=distinct)},"
        for name in AGGREGATIONS
    )
    return f"multiIf({branches}\n{indent}    0.)"


def delay_ms(event: str = "a") -> str:
    """Milliseconds from the unit's first exposure to an attributed event (alias ``event``)."""
    return f"dateDiff('millisecond', {event}.first_exposed_at, {event}.occurred_at)"


def within_window(window_seconds: str, delay: str) -> str:
    """The event is inside the side's window after the first exposure (window 0: no window)."""
    return f"({window_seconds} = 0 OR {delay} <= {window_seconds} * 1000)"


def hit(event_name: str, event: str, window_seconds: str, delay: str) -> str:
    """An attributed event (name column ``event_name``) hits the side of ``event`` and ``window_seconds``."""
    return f"{event_name} = {event} AND {within_window(window_seconds, delay)}"


def field_number(property_: str | None, *, value_column: str, properties_column: str = "") -> str:
    """The value field as a number: the event's ``value`` (NULL = 0) when ``property_`` (SQL of a
    property name) is None or '', else ``properties[property_]`` (not a number = 0)."""
    number = f"ifNull({value_column}, 0.)"
    if property_ is None:
        return number
    return f"if({property_} = '', {number}, toFloat64OrZero({properties_column}[{property_}]))"


def field_text(property_: str, *, value_column: str, properties_column: str) -> str:
    """The value field as text (what ``unique`` counts distinct values of)."""
    return f"if({property_} = '', toString({value_column}), {properties_column}[{property_}])"


def first_exposed_in_window(column: str, indent: str = "           ") -> str:
    """The unit's first exposure (``column``) is in ``[since, until)`` (``indent``: of the second line)."""
    return f"{column} >= {SINCE}\n{indent}AND {column} < {UNTIL}"


def units_cte(*, eligible_only: bool, only: str = "") -> str:
    """The units of the experiment (``unit_id``, ``variation_id``: the first exposure's, ``first_exposure``).

    ``eligible_only`` (the live scan, CTE ``eligible``): only the units that count, first exposed in
    ``[since, until)``. Otherwise (``xp.unit_values``, CTE ``units``): every unit, with its flags
    ``multiple`` and ``overridden_`` (the read applies :data:`ELIGIBLE` and the window). ``only``: an extra
    condition on ``unit_id`` (the incremental build).
    """
    head = (
        "SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,\n"
        "               min(first_exposed_at) AS first_exposure"
    )
    where = (
        "FROM xp.unit_exposures\n"
        f"        WHERE experiment_key = {{experiment:String}}{only}\n"
        "        GROUP BY unit_id"
    )
    if eligible_only:
        return f"""eligible AS
    (
        {head}
        {where}
        HAVING {ELIGIBLE}
           AND {first_exposed_in_window("first_exposure")}
    )"""
    return f"""units AS
    (
        {head},
               {MULTIPLE_VARIATIONS} AS multiple,
               {OVERRIDDEN} AS overridden_
        {where}
    )"""


def first_exposure_attribute(
    name: str, attribute: str, alias: str, *, only: str = "", guard: str = ""
) -> str:
    """CTE ``name``: per unit, ``attribute`` (an expression over ``attributes``) of its first exposure,
    as column ``alias``; ``guard``: an extra condition (no segment asked: no row read)."""
    return f"""{name} AS
    (
        SELECT unit_id, argMin({attribute}, exposed_at) AS {alias}
        FROM xp.exposures
        WHERE experiment_key = {{experiment:String}}{guard}{only}
        GROUP BY unit_id
    )"""  # nosec B608 - no input in the text (package docstring)


def attributed_events(columns: str, events: str, *, until: bool, only: str = "", join: str = "") -> str:
    """``SELECT columns`` from the experiment's attributed events (alias ``a``, ``FINAL``) whose name
    is in ``events`` (SQL); ``until``: only those that occurred before ``until`` (the live scan)."""
    bound = f"\n          AND a.occurred_at < {UNTIL}" if until else ""
    return f"""SELECT
            {columns}
        FROM xp.attributed_events AS a FINAL{join}
        WHERE a.experiment_key = {{experiment:String}}
          AND a.event_name IN {events}{only}{bound}"""  # nosec B608 - no input in the text (package docstring)


def before_exposure(occurred_at: str, first_exposure: str) -> str:
    """A raw event is in the CUPED covariate window: strictly before the unit's first exposure and at
    most ``covariate_seconds`` before it."""
    return (
        f"{occurred_at} < {first_exposure}\n"
        f"          AND dateDiff('millisecond', {occurred_at}, {first_exposure})"
        " <= {covariate_seconds:Float64} * 1000"
    )
