"""The rules of an experiment's ``analysis:`` block, declared once.

The YAML registry (:mod:`assignment.authoring`) validates the block with :class:`AnalysisBlock` and
stores the fields given in the experiment's metadata; ``jobs/analysis_plan.py`` checks every
``AnalysisPlan`` (the block merged with the flags of ``xp results``) with :func:`analysis_problem`, so
the allowed methods, corrections and ranges, the defaults and the words that explain a bad value live
here only. Defaults (docs/statistics.md, decision 0015): ``method: sequential``, ``alpha: 0.05``,
``cuped: false``, ``correction: none``, ``planned_units: null``, ``planned_looks: null`` (5 looks),
``adjustment: null`` (no regression adjustment; decision 0093).

Pure; no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, get_args

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

__all__ = [
    "ADJUSTMENT_PROBLEMS",
    "ANALYSIS_DEFAULTS",
    "ANALYSIS_FIELDS",
    "ANALYSIS_PROBLEMS",
    "CORRECTIONS",
    "GROUP_SEQUENTIAL_METHODS",
    "MAX_ADJUSTMENT_COVARIATES",
    "MAX_ADJUSTMENT_STRATA",
    "METHODS",
    "METHOD_LABELS",
    "OWN_COVARIATE",
    "Adjustment",
    "AnalysisBlock",
    "AnalysisMethod",
    "Correction",
    "analysis_problem",
]

AnalysisMethod = Literal[
    "sequential", "frequentist", "bayesian", "group_sequential_obf", "group_sequential_pocock"
]
"""How ``xp results`` computes intervals (sequential: valid under continuous peeking; the two
group-sequential methods: valid at the planned looks, need ``planned_units``; decision 0063)."""
Correction = Literal["none", "holm", "bh"]
"""Multiple-comparison correction across metrics × treatment variations."""

METHODS: Final[tuple[str, ...]] = get_args(AnalysisMethod)
METHOD_LABELS: Final[dict[str, str]] = {
    "sequential": "Sequential",
    "frequentist": "Frequentist",
    "bayesian": "Bayesian",
    "group_sequential_obf": "Group sequential (O'Brien-Fleming)",
    "group_sequential_pocock": "Group sequential (Pocock)",
}
"""How people see each method (the dashboards' method pickers)."""
GROUP_SEQUENTIAL_METHODS: Final = ("group_sequential_obf", "group_sequential_pocock")
"""The methods whose looks are fractions of ``planned_units`` (so they need it)."""
CORRECTIONS: Final[tuple[str, ...]] = get_args(Correction)
ANALYSIS_FIELDS: Final = (
    "method",
    "alpha",
    "cuped",
    "correction",
    "planned_units",
    "planned_looks",
    "adjustment",
)
"""The block's fields, in the order error messages list them."""

ANALYSIS_PROBLEMS: Final[dict[str, str]] = {
    "method": f"must be one of {', '.join(METHODS)}",
    "correction": f"must be one of {', '.join(CORRECTIONS)}",
    "alpha": "must be a number in (0, 1), e.g. 0.05",
    "cuped": "must be true or false",
    "planned_units": "must be a whole number of units >= 1",
    "planned_looks": "must be a whole number of looks from 1 to 50",
    "adjustment": (
        "must be a mapping {covariates: [metric names or own], strata: [exposure attribute names]} "
        "naming at least one covariate or stratum, each once"
    ),
}
"""What is wrong with a bad value of each field (the YAML errors and ``AnalysisPlan`` both say it)."""


ADJUSTMENT_PROBLEMS: Final[dict[str, str]] = {
    "covariates": "must be a list of at most 8 distinct names: metrics of the catalog, or own",
    "strata": "must be a list of at most 4 distinct exposure attribute names (letters, digits, _ . : -)",
}
"""What is wrong with a bad field of ``analysis.adjustment`` (the YAML errors say it)."""
OWN_COVARIATE: Final = "own"
"""The covariate that is each adjusted metric's own pre-exposure value (as CUPED's)."""
MAX_ADJUSTMENT_COVARIATES: Final = 8
MAX_ADJUSTMENT_STRATA: Final = 4
_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$"


class Adjustment(BaseModel):
    """The block's ``adjustment:`` (regression adjustment, CUPED++; decision 0093): pre-exposure values
    of metrics (``own``: the adjusted metric's) and exposure attributes whose values are strata."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    covariates: tuple[str, ...] = Field(default=(), max_length=MAX_ADJUSTMENT_COVARIATES)
    strata: tuple[str, ...] = Field(default=(), max_length=MAX_ADJUSTMENT_STRATA)

    @pydantic.field_validator("covariates", "strata", mode="before")
    @classmethod
    def _list_of_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("a list of names")
        if len(set(value)) != len(value):
            raise ValueError("names must be unique")
        if not all(re.match(_NAME, v) for v in value):
            raise ValueError("names are letters, digits, _ . : -")
        return value

    @pydantic.model_validator(mode="after")
    def _something(self) -> Adjustment:
        if not self.covariates and not self.strata:
            raise ValueError("names no covariate and no stratum")
        return self

    def to_json(self) -> dict[str, Any]:
        return {"covariates": list(self.covariates), "strata": list(self.strata)}


class AnalysisBlock(BaseModel):
    """An experiment's ``analysis:`` block (strict: ``alpha: '0.05'`` or ``cuped: yes please`` are refused).

    Fields are declared in the order the stored block lists them (``model_dump(exclude_unset=True)``).
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    method: AnalysisMethod = "sequential"
    correction: Correction = "none"
    """holm (Holm–Bonferroni, family-wise error) or bh (Benjamini–Hochberg, false discovery rate)."""
    alpha: float = Field(default=0.05, gt=0, lt=1, allow_inf_nan=False)
    cuped: bool = False
    """Adjust binomial and mean metrics with their pre-exposure covariate (Deng et al. 2013)."""
    planned_units: int | None = Field(default=None, ge=1)
    """Units the experiment was planned for (all variations), if known: shown next to the results, the
    sequential method's N* (decision 0063), and required by the group-sequential methods."""
    planned_looks: int | None = Field(default=None, ge=1, le=50)
    """Equally spaced looks of a group-sequential method (default 5; decision 0063)."""
    adjustment: Adjustment | None = None
    """Regression adjustment of binomial and mean metrics (CUPED++; not together with ``cuped``)."""

    @pydantic.model_validator(mode="after")
    def _group_sequential_has_planned_units(self) -> AnalysisBlock:
        if self.cuped and self.adjustment is not None:
            raise PydanticCustomError(
                "xp_problem",
                "{problem}",
                {"problem": CUPED_AND_ADJUSTMENT, "at": ".adjustment"},
            )
        if self.method in GROUP_SEQUENTIAL_METHODS and self.planned_units is None:
            raise PydanticCustomError(
                "xp_problem",  # assignment.authoring.values.PROBLEM: shown as is, at the field
                "{problem}",
                {"problem": _needs_planned_units(self.method), "at": ".planned_units"},
            )
        return self

    @pydantic.field_validator("adjustment", mode="before")
    @classmethod
    def _adjustment_mapping(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null")
        if isinstance(value, Adjustment):
            return value
        if not isinstance(value, dict):
            raise ValueError("a mapping")
        return Adjustment.model_validate(value)

    @pydantic.field_validator("planned_units", "planned_looks", mode="before")
    @classmethod
    def _given_is_a_number(cls, value: Any) -> Any:
        if value is None:  # not given means unknown; an explicit null is a mistake in the YAML
            raise ValueError("null")
        return value

    def stored(self) -> dict[str, Any]:
        """The fields given, as the registry stores them in the experiment's metadata."""
        stored = self.model_dump(exclude_unset=True)
        if self.adjustment is not None:
            stored["adjustment"] = self.adjustment.to_json()
        return stored


ANALYSIS_DEFAULTS: Final = AnalysisBlock()


CUPED_AND_ADJUSTMENT: Final = "cannot be used together with cuped: true (use covariates: [own] instead)"


def analysis_problem(
    method: Any,
    alpha: Any,
    cuped: Any,
    correction: Any,
    planned_units: Any,
    planned_looks: Any = None,
    adjustment: Any = None,
) -> tuple[str, str] | None:
    """The first field of these analysis settings that breaks a rule, and what is wrong; None if valid.

    ``None`` for ``planned_units`` and ``planned_looks`` means not known / the default (allowed here,
    unlike an explicit null in YAML).
    """
    values: dict[str, Any] = {"method": method, "alpha": alpha, "cuped": cuped, "correction": correction}
    if planned_units is not None:
        values["planned_units"] = planned_units
    if planned_looks is not None:
        values["planned_looks"] = planned_looks
    if adjustment is not None:
        values["adjustment"] = adjustment
    try:
        AnalysisBlock.model_validate(values)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        if not first["loc"]:  # a rule across fields
            if first["msg"] == CUPED_AND_ADJUSTMENT:
                return "adjustment", CUPED_AND_ADJUSTMENT
            return "planned_units", _needs_planned_units(str(method))
        field = str(first["loc"][0])
        return field, ANALYSIS_PROBLEMS[field]
    return None


def _needs_planned_units(method: str) -> str:
    return f"must be given for method {method} (its looks are fractions of it)"
