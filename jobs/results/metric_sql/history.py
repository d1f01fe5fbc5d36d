"""The history SQL of ``xp plan``: a metric's per-unit sums over a past window, as if it were an experiment.

Units are those with any raw event (``xp.events``) in ``[since, until)``; a unit's "exposure" is its first
event there, and each metric side counts the unit's events of the side's event name within the side's
window after it (:func:`~jobs.results.metric_sql.rule.hit`), by the same value rule as the results
(:func:`~jobs.results.metric_sql.rule.value_by_parameter`: binary, count, sum, unique). Units without a
matching event count with 0. The parameters are :func:`~jobs.results.metric_sql.scan.metric_parameters`'
side parameters (``event_a`` … ``window_b_seconds``; side b empty for a non-ratio metric) with ``since``
and ``until`` the history window; :func:`history_parameters` builds them.

One row: ``units``, ``days_with_units`` (days on which a unit was first seen), ``sum_a``,
``sum_a_squares``, ``sum_b``, ``sum_b_squares``, ``cross_sum`` (Σa·b). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobs.results.metric_sql import rule
from jobs.results.metric_sql.scan import metric_parameters

__all__ = ["history_parameters", "history_sums_sql"]

_SIDE_KEYS = ("event", "aggregation", "property", "window")


def _parameter(side: str, name: str) -> str:
    types = {"event": "String", "aggregation": "String", "property": "String", "window": "Float64"}
    suffix = "_seconds" if name == "window" else ""
    return f"{{{name}_{side}{suffix}:{types[name]}}}"


def history_sums_sql() -> str:
    """The one-row history query (see the module docstring)."""
    delay = "dateDiff('millisecond', s.first_seen, e.occurred_at)"
    columns = {"value_column": "e.value", "properties_column": "e.properties"}
    flags, fields, values = [], [], []
    for s in ("a", "b"):
        event, window, prop = (_parameter(s, n) for n in ("event", "window", "property"))
        flags.append(f"{rule.hit('e.event_name', event, window, delay)} AS in_{s}")
        fields.append(f"{rule.field_text(prop, **columns)} AS text_{s}")
        fields.append(f"{rule.field_number(prop, **columns)} AS number_{s}")
        value = rule.value_by_parameter(
            _parameter(s, "aggregation"),
            count=f"countIf(in_{s})",
            total=f"sumIf(number_{s}, in_{s})",
            distinct=f"uniqExactIf(text_{s}, in_{s})",
            indent=" " * 12,
        )
        values.append(f"{value} AS {s}")
    matched_columns = ",\n            ".join(["e.unit_id AS unit_id", *flags, *fields])
    per_unit_values = ",\n            ".join(values)
    return f"""
WITH
    seen AS
    (
        SELECT unit_id, min(occurred_at) AS first_seen
        FROM xp.events
        WHERE occurred_at >= {rule.SINCE} AND occurred_at < {rule.UNTIL}
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            {matched_columns}
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name IN ({_parameter("a", "event")}, {_parameter("b", "event")})
              AND occurred_at >= {rule.SINCE} AND occurred_at < {rule.UNTIL}
        ) AS e
        INNER JOIN seen AS s ON s.unit_id = e.unit_id
    ),
    per_unit AS
    (
        SELECT
            unit_id,
            {per_unit_values}
        FROM matched
        GROUP BY unit_id
    )
SELECT
    toUInt64(count()) AS units,
    toUInt64(uniqExact(toDate(s.first_seen))) AS days_with_units,
    sum(u.a) AS sum_a,
    sum(u.a * u.a) AS sum_a_squares,
    sum(u.b) AS sum_b,
    sum(u.b * u.b) AS sum_b_squares,
    sum(u.a * u.b) AS cross_sum
FROM seen AS s
LEFT JOIN per_unit AS u ON u.unit_id = s.unit_id
SETTINGS join_use_nulls = 0
"""  # nosec B608 - no input in the text (only our own parameter names)


def history_parameters(
    metric: Any, catalog: Mapping[str, Any], *, since: datetime, until: datetime
) -> dict[str, Any]:
    """The bound parameters of :func:`history_sums_sql` for ``metric`` over ``[since, until)``."""
    parameters = metric_parameters(metric, catalog, experiment="", since=since, until=until)
    keep = {"since", "until"} | {
        f"{name}_{side}{'_seconds' if name == 'window' else ''}" for name in _SIDE_KEYS for side in "ab"
    }
    return {key: value for key, value in parameters.items() if key in keep}
