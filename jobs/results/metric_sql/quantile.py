"""The queries of a quantile metric (p50, p90 …): per variation, the sample quantile and the two order
statistics of its 95 % interval, from a t-digest sketch (decision 0083).

The observations are generated from :mod:`~jobs.results.metric_sql.rule` like every results query:

- ``per: unit`` — one value per unit that counts (:data:`rule.ELIGIBLE`, first exposed in the window),
  the side's :func:`rule.value` over its hits (0 without any, ``LEFT JOIN``);
- ``per: event`` — one value per hit (the side's event within its window after the first exposure,
  before ``until``) of a unit that counts: the value field (``value`` or ``properties.NAME``).

Two shapes, run in this order by :mod:`jobs.results.quantile_stats`:

- :func:`quantile_counts_sql`: per variation ``n`` (observations) and ``units``. The counts fix the levels
  ``ν ∓ z·√(ν(1−ν)/n*)`` (:func:`jobs.stats.quantiles.order_statistic_levels`), which ClickHouse needs as
  constants of the aggregate function;
- :func:`quantile_sketch_sql`: per variation ``quantilesTDigest(ν, low, high)`` over the observations
  (levels bound as ``{nu}``, ``{level_low}``, ``{level_high}``), and the per-unit sums of the
  cluster-robust variance (``s_i`` = the unit's observations at or below the variation's quantile,
  ``m_i`` = its observations): ``below_sum``, ``below_sum_squares``, ``events_sum``,
  ``events_sum_squares``, ``cross_sum``.

``quantileTDigest``'s state is a mergeable sketch (``quantileTDigestState`` / ``-Merge`` combine partial
aggregates across parts and shards); its values are Float32 and its rank error is bounded by the digest's
compression (measured against exact order statistics in tests/integration/test_quantile_metrics.py).

Parameters: ``experiment``, ``since``, ``until``, ``event_a``, ``aggregation_a``, ``property_a``,
``window_a_seconds`` (as :func:`jobs.results.metric_sql.scan.metric_parameters` binds side a), and for the
sketch ``nu``, ``level_low``, ``level_high``. Pure.
"""

from __future__ import annotations

from typing import Literal

from jobs.results.metric_sql import rule

__all__ = ["QuantilePer", "quantile_counts_sql", "quantile_sketch_sql"]

QuantilePer = Literal["unit", "event"]
"""What the quantile is over: one value per unit, or every event of the units."""

_EVENT, _AGGREGATION, _PROPERTY, _WINDOW = (
    "{event_a:String}",
    "{aggregation_a:String}",
    "{property_a:String}",
    "{window_a_seconds:Float64}",
)


def _observations(per: QuantilePer) -> list[str]:
    """CTEs up to ``observations`` (``unit_id``, ``variation_id``, ``value``)."""
    columns = {"value_column": "a.value", "properties_column": "p.properties"}
    matched = rule.attributed_events(
        ",\n            ".join(
            [
                "a.unit_id AS unit_id",
                "a.variation_id AS variation_id",
                f"{rule.hit('a.event_name', _EVENT, _WINDOW, rule.delay_ms())} AS in_a",
                f"{rule.field_text(_PROPERTY, **columns)} AS text_a",
                f"{rule.field_number(_PROPERTY, **columns)} AS number_a",
            ]
        ),
        f"({_EVENT})",
        until=True,
        join="\n        LEFT JOIN properties AS p ON p.event_id = a.event_id",
    )
    ctes = [
        rule.units_cte(eligible_only=True),
        f"""properties AS
    (
        SELECT event_id, any(properties) AS properties
        FROM xp.events
        WHERE event_name = {_EVENT} AND {_PROPERTY} != ''
        GROUP BY event_id
    )""",  # nosec B608 - no input in the text (package docstring)
        f"matched AS\n    (\n        {matched}\n    )",
    ]
    if per == "event":
        ctes.append(
            """observations AS
    (
        SELECT m.unit_id AS unit_id, m.variation_id AS variation_id, m.number_a AS value
        FROM matched AS m
        INNER JOIN eligible AS e ON e.unit_id = m.unit_id AND e.variation_id = m.variation_id
        WHERE m.in_a
    )"""
        )
        return ctes
    value = rule.value_by_parameter(
        _AGGREGATION,
        count="countIf(in_a)",
        total="sumIf(number_a, in_a)",
        distinct="uniqExactIf(text_a, in_a)",
        indent=" " * 12,
    )
    ctes.append(
        f"""per_unit AS
    (
        SELECT
            unit_id,
            variation_id,
            {value} AS a
        FROM matched
        GROUP BY unit_id, variation_id
    )"""  # nosec B608 - no input in the text (package docstring)
    )
    ctes.append(
        """observations AS
    (
        SELECT e.unit_id AS unit_id, e.variation_id AS variation_id, u.a AS value
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
    )"""
    )
    return ctes


def quantile_counts_sql(per: QuantilePer) -> str:
    """Per variation: ``n`` (observations), ``units`` (units with an observation)."""
    ctes = ",\n    ".join(_observations(per))
    return f"""
WITH
    {ctes}
SELECT
    variation_id,
    toUInt64(count()) AS n,
    toUInt64(uniqExact(unit_id)) AS units
FROM observations
GROUP BY variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
"""  # nosec B608 - no input in the text (package docstring)


def quantile_sketch_sql(per: QuantilePer) -> str:
    """Per variation: ``n``, ``units``, ``quantile_value``, ``quantile_lower``, ``quantile_upper`` and
    the cluster sums (see the module docstring)."""
    ctes = _observations(per)
    ctes.append(
        """sketch AS
    (
        SELECT
            variation_id,
            quantilesTDigest({nu:Float64}, {level_low:Float64}, {level_high:Float64})(value) AS levels
        FROM observations
        GROUP BY variation_id
    )"""
    )
    ctes.append(
        """per_cluster AS
    (
        SELECT
            o.variation_id AS variation_id,
            toFloat64(countIf(o.value <= s.levels[1])) AS below,
            toFloat64(count()) AS events
        FROM observations AS o
        INNER JOIN sketch AS s ON s.variation_id = o.variation_id
        GROUP BY o.variation_id, o.unit_id
    )"""
    )
    ctes_sql = ",\n    ".join(ctes)
    return f"""
WITH
    {ctes_sql}
SELECT
    c.variation_id AS variation_id,
    toUInt64(sum(c.events)) AS n,
    toUInt64(count()) AS units,
    toFloat64(any(s.levels)[1]) AS quantile_value,
    toFloat64(any(s.levels)[2]) AS quantile_lower,
    toFloat64(any(s.levels)[3]) AS quantile_upper,
    sum(c.below) AS below_sum,
    sum(c.below * c.below) AS below_sum_squares,
    sum(c.events) AS events_sum,
    sum(c.events * c.events) AS events_sum_squares,
    sum(c.below * c.events) AS cross_sum
FROM per_cluster AS c
INNER JOIN sketch AS s ON s.variation_id = c.variation_id
GROUP BY c.variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
"""  # nosec B608 - no input in the text (package docstring)
