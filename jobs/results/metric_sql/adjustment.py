"""The regression-adjustment (CUPED++) query of one metric: sums per variation × stratum cell.

:func:`adjustment_sums_sql` returns, for one binomial or mean metric y (side ``a`` of
:func:`~jobs.results.metric_sql.scan.metric_parameters`) and k pre-exposure covariates x (each the value
of a metric over the unit's raw ``xp.events`` in ``[first exposure - covariate_seconds, first exposure)``,
as CUPED's, decision 0014), one row per variation × *cell* (the values of the stratum attributes of the
unit's first exposure, as segments read them): ``units``, ``sum_y``, ``sum_y_squares``, ``sum_x`` (k),
``sum_xx`` (k × k flattened, row-major), ``sum_yx`` (k). The indicators of the strata and their cross
products follow from these cells exactly (:mod:`jobs.results.adjustment_stats`, decision 0085). Every
sum adds up across parts.

Parameters: those of ``metric_parameters`` for side a, ``covariate_seconds``, per covariate i (1-based)
``event_x{i}``, ``aggregation_x{i}``, ``property_x{i}``, and ``strata`` (Array(String), the attribute
names; empty: one cell).

grain: variation_id × cell, one experiment · time: first_exposed_at (units), occurred_at (events) ·
engine: xp.unit_exposures, xp.attributed_events (FINAL), xp.exposures (strata), xp.events (covariates,
properties). Pure; the warehouse call is in :mod:`jobs.results.adjustment_stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assignment.metrics_catalog import MetricDefinition
from jobs.results.metric_sql import rule
from jobs.results.metric_sql.scan import metric_sums_sql

__all__ = ["adjustment_parameters", "adjustment_sums_sql"]


def _parameter(side: str, name: str) -> str:
    types = {"event": "String", "aggregation": "String", "property": "String"}
    return f"{{{name}_{side}:{types[name]}}}"


def _covariate_value(i: int) -> str:
    side = f"x{i}"
    hit = f"event_name = {_parameter(side, 'event')}"
    return rule.value_by_parameter(
        _parameter(side, "aggregation"),
        count=f"countIf({hit})",
        total=f"sumIf(number_{i}, {hit})",
        distinct=f"uniqExactIf(text_{i}, {hit})",
        indent=" " * 12,
    )


def adjustment_sums_sql(covariates: int) -> str:
    """The query for ``covariates`` (k ≥ 0) pre-exposure covariates (see the module docstring)."""
    if covariates < 0:
        raise ValueError("covariates must be >= 0")
    per_unit = metric_sums_sql()  # reuse its CTEs for y: eligible, properties, matched, per_unit
    ctes = per_unit.split("\nSELECT\n", 1)[0].strip().removeprefix("WITH").strip()
    parts = [ctes, _strata_cte()]
    x = "CAST([], 'Array(Float64)')"
    join = ""
    if covariates:
        fields = []
        for i in range(1, covariates + 1):
            prop = _parameter(f"x{i}", "property")
            columns = {"value_column": "e.value", "properties_column": "e.properties"}
            fields.append(f"{rule.field_text(prop, **columns)} AS text_{i}")
            fields.append(f"{rule.field_number(prop, **columns)} AS number_{i}")
        events = ", ".join(_parameter(f"x{i}", "event") for i in range(1, covariates + 1))
        values = ",\n            ".join(_covariate_value(i) for i in range(1, covariates + 1))
        fields_sql = ",\n            ".join(fields)
        parts.append(
            f"""pre AS
    (
        SELECT
            e.unit_id AS unit_id,
            e.event_name AS event_name,
            {fields_sql}
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name IN ({events})
              AND occurred_at < {rule.UNTIL}
        ) AS e
        INNER JOIN eligible AS u ON u.unit_id = e.unit_id
        WHERE {rule.before_exposure("e.occurred_at", "u.first_exposure")}
    )"""  # nosec B608 - no input in the text (package docstring)
        )
        parts.append(
            f"""covariates AS
    (
        SELECT
            unit_id,
            [
            {values}
            ] AS xs
        FROM pre
        GROUP BY unit_id
    )"""  # nosec B608 - no input in the text (package docstring)
        )
        x = f"if(length(c.xs) = 0, arrayWithConstant({covariates}, 0.), c.xs)"
        join = "\n        LEFT JOIN covariates AS c ON c.unit_id = e.unit_id"
    parts.append(
        f"""unit_rows AS
    (
        SELECT
            e.variation_id AS variation_id,
            if(length(s.cell) = 0, arrayWithConstant(length({{strata:Array(String)}}), ''), s.cell) AS cell,
            u.a AS y,
            {x} AS x
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN strata AS s ON s.unit_id = e.unit_id{join}
    )"""  # nosec B608 - no input in the text (package docstring)
    )
    parts_sql = ",\n    ".join(parts)
    return f"""
WITH
    {parts_sql}
SELECT
    variation_id,
    cell,
    toUInt64(count()) AS units,
    sum(y) AS sum_y,
    sum(y * y) AS sum_y_squares,
    sumForEach(x) AS sum_x,
    sumForEach(arrayFlatten(arrayMap(p -> arrayMap(q -> p * q, x), x))) AS sum_xx,
    sumForEach(arrayMap(t -> y * t, x)) AS sum_yx
FROM unit_rows
GROUP BY variation_id, cell
ORDER BY variation_id, cell
SETTINGS join_use_nulls = 0
"""  # nosec B608


def _strata_cte() -> str:
    """CTE ``strata``: per unit, the stratum attributes' values of its first exposure (``cell``)."""
    return rule.first_exposure_attribute(
        "strata",
        "arrayMap(d -> attributes[d], {strata:Array(String)})",
        "cell",
        guard=" AND length({strata:Array(String)}) > 0",
    )


def adjustment_parameters(
    metric_parameters: Mapping[str, Any],
    covariates: Sequence[MetricDefinition],
    strata: Sequence[str],
    covariate_days: float,
) -> dict[str, Any]:
    """The parameters of :func:`adjustment_sums_sql`: ``metric_parameters`` (of the adjusted metric,
    :func:`~jobs.results.metric_sql.scan.metric_parameters`), the covariates' metrics (event metrics) and
    the stratum attribute names."""
    parameters: dict[str, Any] = {**metric_parameters, "strata": list(strata)}
    if covariates:
        parameters["covariate_seconds"] = covariate_days * 86400.0
    for i, covariate in enumerate(covariates, start=1):
        field = covariate.value_field or "value"
        prop = field.removeprefix("properties.") if field.startswith("properties.") else ""
        parameters[f"event_x{i}"] = covariate.event_name or ""
        parameters[f"aggregation_x{i}"] = covariate.aggregation.value if covariate.aggregation else "count"
        parameters[f"property_x{i}"] = prop
    return parameters
