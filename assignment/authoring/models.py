"""The experiments YAML as pydantic models: what a file may say, checked at the edge (pure).

Strict (a YAML ``'0.5'`` is not a number, ``yes`` is not a key) and closed (an unknown field is an
error, except inside a ``namespace:`` mapping). Field order is the order problems are looked for.
:mod:`assignment.authoring.yaml_experiments` compiles a valid :class:`RegistryDocument` into registry
entries; :mod:`assignment.authoring.problems` turns a :class:`pydantic.ValidationError` into the one
line the user reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from assignment.analysis_block import AnalysisBlock
from assignment.authoring.values import JsonValue, Key, Namespace, Timestamp, json_ready, problem
from assignment.funnel_block import FunnelBlock
from schemas import ExperimentStatus

__all__ = [
    "DECISION_OUTCOMES",
    "METRIC_ROLES",
    "WEIGHT_TOLERANCE",
    "DecisionSpec",
    "ExperimentSpec",
    "MetricRole",
    "RegistryDocument",
    "VariationSpec",
]

WEIGHT_TOLERANCE: Final = 1e-6
"""Variation weights must sum to 1 within this tolerance."""

MetricRole = Literal["primary", "secondary", "guardrails"]
METRIC_ROLES: Final = ("primary", "secondary", "guardrails")

_STRICT: Final = ConfigDict(strict=True, extra="forbid")

DECISION_OUTCOMES: Final = ("ship", "rollback", "inconclusive")


class DecisionSpec(BaseModel):
    """What was decided when the experiment stopped (decision 0089): the outcome and the treatment it is
    about (the one shipped, or the one rolled back; optional with a single treatment), plus a short note."""

    model_config = _STRICT

    outcome: Literal["ship", "rollback", "inconclusive"]
    variation: Key | None = None
    note: str | None = Field(default=None, max_length=500)

    def stored(self) -> dict[str, str]:
        stored: dict[str, str] = {"outcome": self.outcome}
        if self.variation is not None:
            stored["variation"] = self.variation
        if self.note:
            stored["note"] = self.note
        return stored


class VariationSpec(BaseModel):
    """One variation: a key, or ``{key, name, weight, value}`` (name and value default to the key)."""

    model_config = _STRICT

    key: Key
    weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """None: not given (then every variation gets an equal share, or it is an error)."""
    name: str
    value: JsonValue

    @model_validator(mode="before")
    @classmethod
    def _key_is_the_default(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"key": data}
        if isinstance(data, dict):
            return {"name": data.get("key"), "value": data.get("key"), **data}
        return data


def _shared_weights(variations: list[VariationSpec]) -> list[VariationSpec]:
    """Unique keys; weights for all or none (none: equal shares); weights that sum to 1."""
    seen: set[str] = set()
    for index, variation in enumerate(variations):
        if variation.key in seen:
            raise problem(f"duplicate variation key {variation.key!r}", at=f"[{index}].key")
        seen.add(variation.key)
    given = [v.weight is not None for v in variations]
    if any(given) and not all(given):
        raise problem("give every variation a weight, or none", at=f"[{given.index(False)}].weight")
    if not any(given):
        share = 1.0 / len(variations)
        variations = [v.model_copy(update={"weight": share}) for v in variations]
    total = sum(float(v.weight or 0.0) for v in variations)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise problem(f"weights must sum to 1 (they sum to {total:g})")
    return variations


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Variations = Annotated[list[VariationSpec], Field(min_length=2), AfterValidator(_shared_weights)]
MetricNames = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_one_or_many)]
"""Metric names of one role: a name or a list of names."""


class ExperimentSpec(BaseModel):
    """One experiment of the YAML (docs/registry.md)."""

    model_config = _STRICT

    key: Key
    status: ExperimentStatus = Field(default=ExperimentStatus.DRAFT, strict=False)
    variations: Variations
    coverage: float = Field(default=1.0, ge=0, le=1, allow_inf_nan=False)
    hash_attribute: str = Field(default="id", min_length=1)
    seed: str = Field(min_length=1)
    """Defaults to the key."""
    condition: Annotated[dict[Any, Any], AfterValidator(json_ready)] | None = None
    namespace: Namespace = None
    start: Timestamp = None
    stop: Timestamp = None
    feature: Key
    """The feature flag the experiment's rule belongs to; defaults to the key."""
    name: str | None = None
    hypothesis: str | None = None
    owner: str | None = None
    metrics: dict[MetricRole, MetricNames] | None = None
    """Metric names by role, in the order the file gives the roles."""
    tags: JsonValue = None
    analysis: AnalysisBlock | None = None
    funnel: FunnelBlock | None = None
    """Conversion funnel after exposure (``xp funnel``; :mod:`assignment.funnel_block`)."""
    decision: DecisionSpec | None = None
    """The decision taken when it stopped (``xp program``; decision 0089)."""
    default_value: JsonValue = None
    """The feature's value outside the experiment; defaults to the first variation's value."""

    @model_validator(mode="before")
    @classmethod
    def _key_is_the_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {"seed": data.get("key"), "feature": data.get("key"), **data}
        return data

    @model_validator(mode="after")
    def _stops_after_it_starts(self) -> ExperimentSpec:
        if self.start and self.stop and self.stop <= self.start:
            raise problem("must be after start", at="stop")
        return self

    @model_validator(mode="after")
    def _decision_names_a_treatment(self) -> ExperimentSpec:
        if self.decision is None:
            return self
        if self.status is not ExperimentStatus.STOPPED:
            raise problem("a decision needs status: stopped", at="decision")
        if self.decision.variation is None:
            return self
        keys = [v.key for v in self.variations]
        if self.decision.variation not in keys[1:]:
            raise problem(f"must be a treatment variation ({', '.join(keys[1:])})", at="decision.variation")
        return self

    @property
    def default_given(self) -> bool:
        """Whether the file gives ``default_value`` (other experiments of the feature must agree)."""
        return "default_value" in self.model_fields_set


def _empty_is_none(value: Any) -> Any:
    return value or None


class RegistryDocument(BaseModel):
    """An experiments YAML: ``experiments:``, optional ``metrics:`` and ``saved_groups:``.

    ``metrics:`` entries are checked by :func:`assignment.metrics_catalog.metric_from_dict`.
    """

    model_config = _STRICT

    metrics: Annotated[list[Any] | None, BeforeValidator(_empty_is_none)] = None
    saved_groups: Annotated[dict[Any, list[Any]] | None, BeforeValidator(_empty_is_none)] = None
    experiments: Annotated[list[ExperimentSpec], Field(min_length=1)]
