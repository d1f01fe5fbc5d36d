"""Pydantic bodies of the HTTP API (requests validated at the edge; responses documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AssignBatchRequest",
    "AssignBatchResponse",
    "AssignRequest",
    "AssignResponse",
    "Assignment",
    "EventsRequest",
    "EventsResponse",
    "OverrideRequest",
    "OverrideResponse",
    "RecordErrorModel",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignRequest(_Body):
    """One unit's attributes; evaluates the named features, or every feature when ``features`` is absent."""

    attributes: dict[str, Any] = Field(description='Unit attributes, e.g. {"id": "u1", "country": "US"}.')
    features: list[str] | None = Field(default=None, description="Feature keys to evaluate (default: all).")
    expose: bool = Field(default=True, description="Record exposures for in-experiment assignments.")
    sticky_bucket_docs: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "Sticky bucketing: the unit's sticky bucket documents as the last response returned them "
            '([{"attributeName": "id", "attributeValue": "u1", "assignments": {"exp__0": "1"}}]); '
            "send [] the first time. Absent: hash-based assignment only. The service keeps no state."
        ),
    )


class Assignment(BaseModel):
    """One feature's value for the unit and why (the engine's FeatureResult, plus ``overridden``)."""

    value: Any = None
    source: str = Field(description="GrowthBook's source: defaultValue, force, experiment, unknownFeature, …")
    on: bool
    off: bool
    rule_id: str = ""
    experiment_key: str | None = None
    in_experiment: bool = False
    variation_id: int | None = None
    variation_key: str | None = None
    variation_name: str | None = None
    hash_used: bool = False
    hash_attribute: str | None = None
    hash_value: Any = None
    bucket: float | None = None
    sticky_bucket_used: bool = Field(default=False, description="The variation came from a sticky bucket.")
    overridden: bool = Field(default=False, description="Forced by a registry override.")


class AssignResponse(BaseModel):
    payload_version: int = Field(description="Version of the compiled payload that answered.")
    features: dict[str, Assignment]
    sticky_bucket_docs: list[dict[str, Any]] | None = Field(
        default=None,
        description="With sticky_bucket_docs in the request: the unit's documents to keep and resend.",
    )


class AssignBatchRequest(_Body):
    """Many units; the same features for each."""

    units: list[dict[str, Any]] = Field(description="Attributes of each unit, in order.")
    features: list[str] | None = Field(default=None, description="Feature keys to evaluate (default: all).")
    expose: bool = True


class AssignBatchResponse(BaseModel):
    payload_version: int
    results: list[dict[str, Assignment]] = Field(description="One object per unit, in request order.")


class EventsRequest(_Body):
    """Records to collect. Each is checked against its contract (docs/schemas.md) on its own."""

    exposures: list[Any] = Field(default_factory=list, description="Exposure records (schemas.Exposure).")
    events: list[Any] = Field(default_factory=list, description="Metric events (schemas.MetricEvent).")


class RecordErrorModel(BaseModel):
    kind: str = Field(description="exposure or metric_event")
    index: int = Field(description="Position in its list of the request.")
    reason: str = Field(description="Dead-letter reason code, e.g. missing_field, bad_timestamp.")
    detail: str


class EventsResponse(BaseModel):
    accepted: int
    rejected: int
    errors: list[RecordErrorModel]


class OverrideRequest(_Body):
    """Force a unit into a variation of an experiment (QA, VIPs); audited in the registry."""

    experiment_key: str = Field(min_length=1)
    unit_id: str = Field(min_length=1, max_length=256)
    variation_id: int = Field(ge=0, le=65535)
    variation_key: str | None = None
    expires_at: datetime | None = Field(default=None, description="RFC 3339 with a zone; null: never.")
    reason: str = ""
    changed_by: str | None = Field(
        default=None,
        description="Ignored unless given: the actor is the admin key's name; a different value is refused.",
    )


class OverrideResponse(BaseModel):
    record_id: str
    key: str
    change: str
