"""What one experiments file declares: :class:`AuthoredRegistry` (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from assignment.metrics_catalog import MetricDefinition
from assignment.registry import SAVED_GROUPS_FIELD, RegistrySnapshot
from schemas import (
    ExperimentDefinition,
    FeatureDefinition,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    registry_key,
)
from xpcore.errors import ValidationError

__all__ = ["AuthoredRegistry", "Where", "with_saved_groups"]


@dataclass(frozen=True)
class AuthoredRegistry:
    """What one file declares: entries (version 1; the publisher renumbers) and its metrics."""

    source: str
    experiments: tuple[ExperimentDefinition, ...]
    features: tuple[FeatureDefinition, ...]
    metrics: tuple[MetricDefinition, ...] = ()

    def entries(self) -> list[ExperimentDefinition | FeatureDefinition]:
        """Experiments first, then features, in file order."""
        return [*self.experiments, *self.features]

    def snapshot(self) -> RegistrySnapshot:
        """The registry this file alone would make (statuses apply: only running experiments serve)."""
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        records = [
            RegistryRecord(
                record_id=f"file-{index}",
                kind=RegistryKind.EXPERIMENT
                if isinstance(entry, ExperimentDefinition)
                else RegistryKind.FEATURE,
                key=registry_key(entry),
                change=RegistryChange.CREATED,
                changed_by="file",
                changed_at=epoch,
                payload=entry,
            )
            for index, entry in enumerate(self.entries())
        ]
        return RegistrySnapshot.from_records(records)


class Where:
    """Builds ``file: experiment 'k': field: problem`` messages (for rules across experiments)."""

    def __init__(self, source: str, subject: str) -> None:
        self.prefix = f"{source}: {subject}"

    def error(self, field: str, problem: str) -> ValidationError:
        return ValidationError(f"{self.prefix}: {field}: {problem}")


def _referenced_groups(document: Any) -> set[str]:
    """Saved-group ids a condition refers to (``$inGroup``, ``$notInGroup``, ``$savedGroup``)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for op, operand in document.items():
            if op in ("$inGroup", "$notInGroup", "$savedGroup") and isinstance(operand, str):
                found.add(operand)
            else:
                found |= _referenced_groups(operand)
    elif isinstance(document, list):
        for item in document:
            found |= _referenced_groups(item)
    return found


def with_saved_groups(definition: dict[str, Any], groups: Mapping[Any, Any], where: Where) -> dict[str, Any]:
    """A feature definition carrying the saved groups its rules refer to (each must be defined)."""
    wanted = sorted(_referenced_groups(definition.get("rules")))
    missing = [g for g in wanted if g not in groups]
    if missing:
        raise where.error("condition", f"saved group {missing[0]!r} is not defined (saved_groups:)")
    if wanted:
        return {**definition, SAVED_GROUPS_FIELD: {g: groups[g] for g in wanted}}
    return definition
