"""Builders shared by the registry tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import (
    ExperimentDefinition,
    ExperimentStatus,
    FeatureDefinition,
    FeatureStatus,
    Override,
    RegistryChange,
    RegistryKind,
    RegistryPayload,
    RegistryRecord,
    registry_key,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)

_KINDS = {
    ExperimentDefinition: RegistryKind.EXPERIMENT,
    FeatureDefinition: RegistryKind.FEATURE,
    Override: RegistryKind.OVERRIDE,
}


def experiment(
    key: str = "exp",
    version: int = 1,
    status: ExperimentStatus = ExperimentStatus.RUNNING,
    *,
    feature: str = "feat",
    weights: tuple[float, ...] = (0.5, 0.5),
    coverage: float = 1.0,
    **metadata: Any,
) -> ExperimentDefinition:
    rule = {
        "key": key,
        "seed": key,
        "hashAttribute": "id",
        "hashVersion": 2,
        "variations": [f"v{i}" for i in range(len(weights))],
        "weights": list(weights),
        "coverage": coverage,
        "meta": [{"key": f"k{i}", "name": f"Variation {i}"} for i in range(len(weights))],
    }
    return ExperimentDefinition(
        key=key,
        version=version,
        status=status,
        name=key,
        definition=rule,
        metadata={"feature": feature, **metadata},
    )


def feature(
    key: str = "feat",
    version: int = 1,
    status: FeatureStatus = FeatureStatus.ACTIVE,
    rules: list[dict[str, Any]] | None = None,
    default: Any = "v0",
) -> FeatureDefinition:
    if rules is None:
        rules = [experiment().definition]
    return FeatureDefinition(
        key=key, version=version, status=status, definition={"defaultValue": default, "rules": rules}
    )


def override(
    experiment_key: str = "exp",
    unit_id: str = "u1",
    variation_id: int = 1,
    expires_at: datetime | None = None,
) -> Override:
    return Override(
        experiment_key=experiment_key,
        unit_id=unit_id,
        variation_id=variation_id,
        variation_key=f"k{variation_id}",
        expires_at=expires_at,
        reason="QA",
    )


def record(
    payload: RegistryPayload | None,
    change: RegistryChange = RegistryChange.CREATED,
    *,
    at: datetime | None = None,
    seconds: int = 0,
    key: str | None = None,
    kind: RegistryKind | None = None,
) -> RegistryRecord:
    if payload is not None:
        key = registry_key(payload)
        kind = _KINDS[type(payload)]
    assert key is not None and kind is not None
    return RegistryRecord(
        record_id=f"r-{key}-{seconds}-{change}",
        kind=kind,
        key=key,
        change=change,
        changed_by="test",
        changed_at=(at or T0) + timedelta(seconds=seconds),
        payload=payload,
    )
