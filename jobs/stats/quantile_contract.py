"""``xp stats test`` for quantile metrics: the request with ``"metric_type": "quantile"``.

The common fields (``difference``, ``method``, ``alpha``, ``weights``, ``planned_units`` …) are those of
:class:`jobs.stats.contract.StatsRequest`; a quantile request adds ``quantile`` (the level ν, e.g. 0.9) and
its variants carry either the order statistics as ClickHouse returns them::

    {"name", "n", "quantile_value", "quantile_lower", "quantile_upper",
     "n_star": 1000,                                    optional: the count the levels came from (default n)
     "clusters": {"units", "below_sum", "below_sum_squares",      per-event quantiles only
                  "events_sum", "events_sum_squares", "cross_sum"}}

or the raw values (exact order statistics)::

    {"name", "values": [1.2, 3.4, ...]}                 per unit: one value per unit
    {"name", "values": [...], "units": ["u1", ...]}     per event: the unit of every value

Formulas: :mod:`jobs.stats.quantiles` (decision 0083).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from jobs.stats.contract import _STRICT, StatsRequest
from jobs.stats.quantiles import (
    ClusterSums,
    QuantileStatistic,
    clustered_quantile_statistic,
    quantile_statistic,
)

__all__ = ["QuantileRequest", "QuantileVariantInput", "quantile_statistics"]

_SUFFICIENT = ("quantile_value", "quantile_lower", "quantile_upper")


class ClustersInput(BaseModel):
    """Per-event quantiles: per-unit sums of the cluster-robust variance (see :class:`ClusterSums`)."""

    model_config = _STRICT
    units: int = Field(ge=0, description="Units with at least one event.")
    below_sum: float = Field(ge=0, description="Σ over units of its events at or below the quantile.")
    below_sum_squares: float = Field(ge=0, description="Σ of their squares.")
    events_sum: float = Field(ge=0, description="Σ over units of its events.")
    events_sum_squares: float = Field(ge=0, description="Σ of their squares.")
    cross_sum: float = Field(ge=0, description="Σ of the products of the two.")


class QuantileVariantInput(BaseModel):
    """One variation of a quantile metric: its order statistics, or its raw values (control first)."""

    model_config = _STRICT
    name: str = Field(min_length=1, description="Variation name, echoed in the answer.")
    n: int = Field(ge=0, description="Values the quantile is over (units; events per event).")
    n_star: int | None = Field(None, ge=1, description="The count the interval's levels came from.")
    quantile_value: float | None = Field(None, description="The sample quantile.")
    quantile_lower: float | None = Field(None, description="The value at level ν − z·√(ν(1−ν)/n*).")
    quantile_upper: float | None = Field(None, description="The value at level ν + z·√(ν(1−ν)/n*).")
    clusters: ClustersInput | None = Field(None, description="Per-event quantiles: the per-unit sums.")
    values: list[float] | None = Field(None, description="Raw values (instead of the order statistics).")
    units: list[str | int] | None = Field(None, description="Raw per-event values: the unit of each.")

    @model_validator(mode="before")
    @classmethod
    def _n_from_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and "n" not in data and isinstance(data.get("values"), list):
            return {**data, "n": len(data["values"])}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> QuantileVariantInput:
        given = [field for field in _SUFFICIENT if getattr(self, field) is not None]
        if self.values is not None:
            if given or self.clusters is not None or self.n_star is not None:
                raise ValueError("give either values (raw) or the order statistics, not both")
            if self.n != len(self.values):
                raise ValueError(f"n is {self.n} but there are {len(self.values)} values")
            if self.units is not None and len(self.units) != len(self.values):
                raise ValueError(f"{len(self.values)} values but {len(self.units)} units")
        elif self.units is not None:
            raise ValueError("units: only with values (raw per-event values)")
        elif len(given) != len(_SUFFICIENT):
            missing = ", ".join(field for field in _SUFFICIENT if field not in given)
            raise ValueError(f"a quantile variant needs values, or {missing}")
        return self


class QuantileRequest(StatsRequest):
    """One quantile metric of one experiment, as ``xp stats test`` reads it."""

    metric_type: Literal["quantile"] = Field(description="A quantile (p50, p90 …) of a value.")  # type: ignore[assignment]
    quantile: float = Field(gt=0, lt=1, description="The quantile level ν, e.g. 0.9 for p90.")
    variants: list[QuantileVariantInput] = Field(  # type: ignore[assignment]
        min_length=2, description="Control first, then treatments."
    )

    @model_validator(mode="after")
    def _fields_match_metric_type(self) -> QuantileRequest:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"field variants: names must be unique, got {names}")
        if self.weights is not None and len(self.weights) != len(self.variants):
            raise ValueError(f"field weights: {len(self.weights)} entries for {len(self.variants)} variants")
        if self.weights is not None and any(w <= 0 for w in self.weights):
            raise ValueError(f"field weights: must be positive, got {self.weights}")
        if self.prior is not None and self.method != "bayesian":
            raise ValueError("field prior: applies to method 'bayesian' only")
        if self.method.startswith("group_sequential") and self.planned_units is None:
            raise ValueError(f"field planned_units: method {self.method} needs the planned units")
        if self.cuped:
            raise ValueError("field cuped: not supported for quantile metrics")
        per_event = {v.clusters is not None or v.units is not None for v in self.variants}
        if len(per_event) > 1:
            raise ValueError("field variants: all per unit, or all per event (clusters / units)")
        return self


def quantile_statistics(request: QuantileRequest) -> list[QuantileStatistic]:
    """The statistic of every variant (ValidationError: the numbers contradict each other)."""
    statistics = []
    for variant in request.variants:
        if variant.values is not None:
            if variant.units is not None:
                statistic = clustered_quantile_statistic(variant.values, variant.units, request.quantile)
            else:
                statistic = quantile_statistic(variant.values, request.quantile)
        else:
            assert variant.quantile_value is not None
            assert variant.quantile_lower is not None and variant.quantile_upper is not None
            clusters = ClusterSums(**variant.clusters.model_dump()) if variant.clusters else None
            statistic = QuantileStatistic(
                variant.n,
                request.quantile,
                variant.quantile_value,
                variant.quantile_lower,
                variant.quantile_upper,
                n_star=variant.n_star,
                clusters=clusters,
            )
        statistics.append(statistic)
    return statistics
