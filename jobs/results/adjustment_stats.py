"""Regression adjustment (CUPED++) in ``xp results``: cell sums → one AdjustedStatistic per variation.

An experiment whose ``analysis:`` block declares ``adjustment: {covariates, strata}`` (decision 0093) has
each binomial and mean metric queried with :func:`~jobs.results.metric_sql.adjustment.adjustment_sums_sql`:
sums per variation × stratum cell. :func:`adjusted_statistics` (pure) turns them into the engine's
:class:`~jobs.stats.regression_adjustment.AdjustedStatistic`: the regressors are the covariates, then one
0/1 indicator per (stratum, value) seen; an indicator's sums and cross products are sums of the cells that
have it (``Σd = n``, ``Σd·x = Σx``, ``Σd·y = Σy``, ``Σd·d' = n`` over the cells with both). Ratio and
quantile metrics are not adjusted; :class:`AdjustmentDecision` says why, as CUPED's decision does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from assignment.analysis_block import OWN_COVARIATE, Adjustment
from assignment.metrics_catalog import MetricDefinition, MetricType
from jobs.results.metric_sql.adjustment import adjustment_parameters, adjustment_sums_sql
from jobs.results.metric_sql.scan import metric_parameters
from jobs.stats.regression_adjustment import AdjustedStatistic

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.warehouse import Warehouse

__all__ = [
    "MAX_REGRESSORS",
    "AdjustmentDecision",
    "CellSums",
    "adjusted_statistics",
    "adjustment_covariates",
    "fetch_adjustment_sums",
]

MAX_REGRESSORS = 64
"""Covariates plus stratum indicators the engine takes (beyond: not adjusted, with the reason)."""


@dataclass(frozen=True, slots=True)
class CellSums:
    """One row of the adjustment query: one variation × one stratum cell."""

    variation_id: int
    cell: tuple[str, ...]
    units: int
    sum_y: float
    sum_y_squares: float
    sum_x: tuple[float, ...]
    sum_xx: tuple[float, ...]
    """k × k, row-major."""
    sum_yx: tuple[float, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CellSums:
        return cls(
            int(row["variation_id"]),
            tuple(str(v) for v in row["cell"]),
            int(row["units"]),
            float(row["sum_y"]),
            float(row["sum_y_squares"]),
            tuple(float(v) for v in row["sum_x"] or ()),
            tuple(float(v) for v in row["sum_xx"] or ()),
            tuple(float(v) for v in row["sum_yx"] or ()),
        )


@dataclass(frozen=True, slots=True)
class AdjustmentDecision:
    """Whether one metric's results are regression-adjusted, with what, and the variance reduction."""

    applied: bool
    reason: str | None = None
    covariates: tuple[str, ...] = ()
    strata: tuple[str, ...] = ()
    regressors: tuple[str, ...] = ()
    """Covariate names then ``stratum=value`` indicators, in the order of ``coefficients``."""
    coefficients: tuple[float, ...] = ()
    variance_reduction: float | None = None
    """``1 − Var(adjusted Δ)/Var(plain Δ)`` (decision 0085)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "covariates": list(self.covariates),
            "strata": list(self.strata),
            "regressors": list(self.regressors),
            "coefficients": list(self.coefficients),
            "variance_reduction": self.variance_reduction,
        }


def adjustment_covariates(
    metric: MetricDefinition, adjustment: Adjustment, catalog: Mapping[str, MetricDefinition]
) -> tuple[list[MetricDefinition], str | None]:
    """The covariates' metrics of ``metric`` (``own``: itself), or a reason it cannot be adjusted."""
    if metric.type is MetricType.RATIO:
        return [], "ratio metrics are not regression-adjusted (binomial and mean only)"
    if metric.type is MetricType.QUANTILE:
        return [], "quantile metrics are not regression-adjusted"
    found = []
    for name in adjustment.covariates:
        covariate = metric if name == OWN_COVARIATE else catalog.get(name)
        if covariate is None:
            return [], f"covariate {name!r} is not a metric of this experiment's catalog"
        if covariate.type in (MetricType.RATIO, MetricType.QUANTILE) or covariate.event_name is None:
            return [], f"covariate {name!r} is not a binomial or mean event metric"
        found.append(covariate)
    return found, None


def fetch_adjustment_sums(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    metrics: Sequence[MetricDefinition],
    adjustment: Adjustment,
    catalog: Mapping[str, MetricDefinition],
    *,
    since: datetime,
    until: datetime,
    covariate_days: float,
) -> dict[str, list[CellSums] | str]:
    """Metric name → its cell rows, or the reason it is not adjusted (one query per adjusted metric)."""
    sql = adjustment_sums_sql(len(adjustment.covariates))
    found: dict[str, list[CellSums] | str] = {}
    for metric in metrics:
        covariates, reason = adjustment_covariates(metric, adjustment, catalog)
        if reason is not None:
            found[metric.name] = reason
            continue
        base = metric_parameters(metric, catalog, experiment=experiment.key, since=since, until=until)
        parameters = adjustment_parameters(base, covariates, adjustment.strata, covariate_days)
        rows = warehouse.query_arrow(sql, parameters).to_pylist()
        found[metric.name] = [CellSums.from_row(row) for row in rows]
    return found


def _regressors(cells: Sequence[CellSums], adjustment: Adjustment) -> tuple[list[str], list[tuple[int, str]]]:
    """(regressor names, the (stratum index, value) of each indicator), values sorted per stratum."""
    levels = [sorted({c.cell[s] for c in cells}) for s in range(len(adjustment.strata))]
    indicators = [(s, value) for s, values in enumerate(levels) for value in values]
    names = [*adjustment.covariates, *(f"{adjustment.strata[s]}={value}" for s, value in indicators)]
    return names, indicators


def adjusted_statistics(
    cells: Sequence[CellSums], variation_ids: Sequence[int], adjustment: Adjustment, *, binomial: bool
) -> tuple[list[AdjustedStatistic], list[str]]:
    """One :class:`AdjustedStatistic` per variation in ``variation_ids`` order, and the regressor names.

    ValueError when the regressors are more than :data:`MAX_REGRESSORS` (strata with many values);
    ValidationError (from the engine) for sums no real values have.
    """
    names, indicators = _regressors(cells, adjustment)
    if not names:
        raise ValueError("no unit has a stratum value to adjust with")
    if len(names) > MAX_REGRESSORS:
        raise ValueError(
            f"{len(names)} regressors (covariates and stratum values) are more than {MAX_REGRESSORS}"
        )
    k, m = len(adjustment.covariates), len(names)
    statistics = []
    for variation_id in variation_ids:
        n, sum_y, sum_y2 = 0, 0.0, 0.0
        sum_r = [0.0] * m
        sum_rr = [[0.0] * m for _ in range(m)]
        sum_yr = [0.0] * m
        for cell in (c for c in cells if c.variation_id == variation_id):
            n += cell.units
            sum_y += cell.sum_y
            sum_y2 += cell.sum_y_squares
            on = [k + j for j, (s, value) in enumerate(indicators) if cell.cell[s] == value]
            x = cell.sum_x or (0.0,) * k
            xx = cell.sum_xx or (0.0,) * (k * k)
            yx = cell.sum_yx or (0.0,) * k
            for i in range(k):
                sum_r[i] += x[i]
                sum_yr[i] += yx[i]
                for j in range(k):
                    sum_rr[i][j] += xx[i * k + j]
                for j in on:
                    sum_rr[i][j] += x[i]
                    sum_rr[j][i] += x[i]
            for i in on:
                sum_r[i] += cell.units
                sum_yr[i] += cell.sum_y
                for j in on:
                    sum_rr[i][j] += cell.units
        if binomial:
            sum_y = sum_y2 = float(round(sum_y))
        statistics.append(
            AdjustedStatistic(
                n,
                _clean(sum_y),
                _clean(sum_y2),
                tuple(sum_r),
                tuple(tuple(row) for row in sum_rr),
                tuple(sum_yr),
            )
        )
    return statistics, names


def _clean(value: float) -> float:
    return 0.0 if abs(value) < 1e-12 else value
