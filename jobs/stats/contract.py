"""The JSON contract of ``xp stats test``: parse one request, answer with one JSON object.

Request (one JSON object; a ``.jsonl`` file holds one per line)::

    {"metric_type": "binomial" | "mean" | "ratio" | "quantile",   quantile: jobs/stats/quantile_contract.py
     "difference": "absolute" | "relative",               default "relative"
     "method": "frequentist" | "bayesian" | "sequential"
             | "group_sequential_obf" | "group_sequential_pocock",   default "sequential"
     "alpha": 0.05, "weights": [0.5, 0.5],                 defaults: 0.05, an even split
     "cuped": false, "higher_is_better": true,
     "planned_units": 10000, "planned_looks": 5,           group-sequential: required / default 5
     "sequential_tuning_parameter": 5000,                  default: planned_units, else 5000
     "relative_interval": "fieller" | "delta",             default "fieller"
     "prior": {"mean": 0, "variance": 1},                  bayesian only; omitted = flat prior
     "variants": [{"name", "n", "sum", "sum_squares"}, ...]}   control first

ratio variants carry ``numerator`` and ``denominator`` ({"sum", "sum_squares"}) and ``cross_sum``
(Σ numerator·denominator); with ``cuped: true`` a variant carries ``covariate`` ({"sum",
"sum_squares"}) and ``cross_sum`` (Σ metric·covariate). Answer::

    {"srm_p_value", "srm_error", "metric_type", "method", "difference", "alpha",
     "variants": [{"name", "n", "mean", "error"},                                   control
                  {"name", "n", "mean", "estimate", "standard_error", "ci_low", "ci_high",
                   "p_value", "chance_to_win", "risk", "significant", "error"}, ...]}
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assignment.analysis_block import AnalysisMethod
from jobs.stats.analysis import compare_variations
from jobs.stats.bayesian import GaussianPrior
from jobs.stats.group_sequential import DEFAULT_PLANNED_LOOKS
from jobs.stats.results import RelativeInterval
from jobs.stats.srm import sample_ratio_mismatch
from jobs.stats.sufficient import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
    ValueSums,
)
from xpcore.errors import ValidationError

__all__ = ["StatsRequest", "analyze_request", "parse_request"]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class SumsInput(BaseModel):
    """Σ value and Σ value² over the units of a variation."""

    model_config = _STRICT
    sum: float = Field(description="Σ of the per-unit values.")
    sum_squares: float = Field(ge=0, description="Σ of the squared per-unit values.")


class PriorInput(BaseModel):
    """A proper normal prior on the difference (Bayesian only)."""

    model_config = _STRICT
    mean: float = Field(0.0, description="Prior mean of the difference.")
    variance: float = Field(gt=0, description="Prior variance of the difference.")


class VariantInput(BaseModel):
    """One variation's sufficient statistics (control first)."""

    model_config = _STRICT
    name: str = Field(min_length=1, description="Variation name, echoed in the answer.")
    n: int = Field(ge=0, description="Units (users) in the variation.")
    sum: float | None = Field(None, description="Σ metric (binomial: conversions).")
    sum_squares: float | None = Field(None, ge=0, description="Σ metric² (binomial: equals sum).")
    numerator: SumsInput | None = Field(None, description="Ratio metrics: sums of the numerator.")
    denominator: SumsInput | None = Field(None, description="Ratio metrics: sums of the denominator.")
    covariate: SumsInput | None = Field(None, description="CUPED: sums of the pre-exposure covariate.")
    cross_sum: float | None = Field(
        None, description="Ratio: Σ numerator·denominator. CUPED: Σ metric·covariate."
    )


class StatsRequest(BaseModel):
    """One metric of one experiment, as ``xp stats test`` reads it."""

    model_config = _STRICT
    metric_type: Literal["binomial", "mean", "ratio"] = Field(description="How a unit's value is formed.")
    difference: Literal["absolute", "relative"] = Field("relative", description="Absolute or relative lift.")
    method: AnalysisMethod = Field(
        "sequential",
        description="Welch t-test, Gaussian Bayesian, confidence sequence, or group-sequential (OBF/Pocock).",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="1 − confidence level.")
    weights: list[float] | None = Field(None, description="Expected traffic split; default even.")
    cuped: bool = Field(False, description="Adjust for the covariate (Deng et al. 2013).")
    higher_is_better: bool = Field(True, description="Metric direction (chance to win, risk).")
    sequential_tuning_parameter: float | None = Field(
        None, gt=0, description="N* of the confidence sequence; default planned_units, else 5000."
    )
    planned_units: int | None = Field(
        None, ge=1, description="Units the experiment is planned for (all variations)."
    )
    planned_looks: int = Field(
        DEFAULT_PLANNED_LOOKS, ge=1, le=50, description="Equally spaced looks (group-sequential)."
    )
    relative_interval: RelativeInterval = Field(
        "fieller", description="Relative lifts: Fieller's interval (calibrated) or the delta method's."
    )
    prior: PriorInput | None = Field(None, description="Bayesian prior on the difference; default flat.")
    variants: list[VariantInput] = Field(min_length=2, description="Control first, then treatments.")

    @model_validator(mode="after")
    def _fields_match_metric_type(self) -> StatsRequest:
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
        if self.cuped and self.metric_type == "ratio":
            raise ValueError("field cuped: supported for binomial and mean metrics, not ratio")
        for index, variant in enumerate(self.variants):
            _check_variant_fields(self, index, variant)
        return self


def _check_variant_fields(request: StatsRequest, index: int, variant: VariantInput) -> None:
    where = f"field variants[{index}] ({variant.name})"
    present = {field for field in variant.model_fields_set if getattr(variant, field) is not None}
    if request.metric_type == "ratio":
        required = {"numerator", "denominator", "cross_sum"}
        forbidden = {"sum", "sum_squares", "covariate"}
    else:
        required = {"sum", "sum_squares"} | ({"covariate", "cross_sum"} if request.cuped else set())
        forbidden = {"numerator", "denominator"} | (set() if request.cuped else {"covariate", "cross_sum"})
    missing = sorted(required - present)
    if missing:
        raise ValueError(f"{where}: {request.metric_type} metric needs {', '.join(missing)}")
    extra = sorted(forbidden & present)
    if extra:
        hint = " (set cuped: true to use a covariate)" if "covariate" in extra or "cross_sum" in extra else ""
        raise ValueError(f"{where}: {', '.join(extra)} not allowed for a {request.metric_type} metric{hint}")
    if request.metric_type == "binomial" and variant.sum != variant.sum_squares:
        raise ValueError(f"{where}: binomial metric needs sum == sum_squares (conversions)")


def _statistic(request: StatsRequest, variant: VariantInput) -> Statistic:
    if request.metric_type == "ratio":
        assert variant.numerator and variant.denominator and variant.cross_sum is not None
        return RatioStatistic(
            variant.n,
            ValueSums(variant.numerator.sum, variant.numerator.sum_squares),
            ValueSums(variant.denominator.sum, variant.denominator.sum_squares),
            variant.cross_sum,
        )
    assert variant.sum is not None and variant.sum_squares is not None
    if request.cuped:
        assert variant.covariate is not None and variant.cross_sum is not None
        if request.metric_type == "binomial":
            ProportionStatistic(variant.n, variant.sum)  # 0 <= conversions <= n
        return CupedStatistic(
            variant.n,
            ValueSums(variant.sum, variant.sum_squares),
            ValueSums(variant.covariate.sum, variant.covariate.sum_squares),
            variant.cross_sum,
        )
    if request.metric_type == "binomial":
        return ProportionStatistic(variant.n, variant.sum)
    return SampleMeanStatistic(variant.n, variant.sum, variant.sum_squares)


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_request(text: str, where: str) -> tuple[StatsRequest, list[Statistic]]:
    """Parse and validate one request; ``where`` ("file.jsonl line 3") prefixes every error message."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ValidationError(f"{where}: invalid JSON at column {error.colno}: {error.msg}") from None
    except ValueError as error:
        raise ValidationError(f"{where}: invalid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValidationError(f"{where}: expected a JSON object, got {type(document).__name__}")
    model: type[StatsRequest] = StatsRequest
    if document.get("metric_type") == "quantile":
        from jobs.stats.quantile_contract import QuantileRequest  # it builds on this module

        model = QuantileRequest
    try:
        request = model.model_validate(document)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "required field is missing"
        elif first["type"] == "extra_forbidden":
            message = "unknown field"
        location = tuple(first["loc"])
        prefix = f"field {_field_path(location)}: " if location else ""
        raise ValidationError(f"{where}: {prefix}{message}") from None
    if model is not StatsRequest:
        from jobs.stats.quantile_contract import QuantileRequest, quantile_statistics

        assert isinstance(request, QuantileRequest)
        try:
            return request, quantile_statistics(request)  # type: ignore[return-value]
        except ValidationError as error:
            raise ValidationError(f"{where}: {error}") from None
    statistics = []
    for index, variant in enumerate(request.variants):
        try:
            statistics.append(_statistic(request, variant))
        except ValidationError as error:
            raise ValidationError(f"{where}: field variants[{index}] ({variant.name}): {error}") from None
    return request, statistics


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def analyze_request(request: StatsRequest, statistics: list[Statistic]) -> dict[str, Any]:
    """The answer object for one parsed request."""
    counts = [getattr(s, "units", s.n) for s in statistics]  # a per-event quantile: its units
    weights = request.weights or [1.0] * len(statistics)
    srm = sample_ratio_mismatch(counts, weights)
    prior = GaussianPrior(request.prior.mean, request.prior.variance) if request.prior else None
    results = compare_variations(
        statistics,
        method=request.method,
        difference=request.difference,
        alpha=request.alpha,
        higher_is_better=request.higher_is_better,
        tuning_parameter=request.sequential_tuning_parameter,
        prior=prior,
        planned_units=request.planned_units,
        planned_looks=request.planned_looks,
        relative_interval=request.relative_interval,
    )
    control = request.variants[0]
    variants: list[dict[str, Any]] = [
        {"name": control.name, "n": control.n, "mean": _number(statistics[0].mean), "error": None}
    ]
    for variant, statistic, result in zip(request.variants[1:], statistics[1:], results, strict=True):
        variants.append(
            {
                "name": variant.name,
                "n": variant.n,
                "mean": _number(statistic.mean),
                "estimate": result.estimate,
                "standard_error": result.standard_error,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p_value": result.p_value,
                "chance_to_win": result.chance_to_win,
                "risk": result.risk,
                "significant": result.significant,
                "error": result.error.value if result.error else None,
            }
        )
    return {
        "srm_p_value": srm.p_value,
        "srm_error": srm.error.value if srm.error else None,
        "metric_type": request.metric_type,
        "method": request.method,
        "difference": request.difference,
        "alpha": request.alpha,
        "variants": variants,
    }
