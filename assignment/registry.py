"""The registry's current state as plain data: what the stream, loadgen and the service read.

The registry is the compacted topic ``xp.registry`` of :class:`schemas.RegistryRecord` changes.
Folding those records in order gives a :class:`RegistrySnapshot`. This module is pure (no Kafka);
the Kafka reader/publisher lives in ``xpstream/registry_topic.py``.

Public surface (other packages code against these names):

- :class:`VariationSpec`, :class:`MetricsSpec`, :class:`ExperimentSpec`: one experiment, as authored.
- :class:`RegistrySnapshot`: ``experiments``, ``features``, ``overrides``; ``running_experiments()``,
  ``known_variations()``, ``override_for(experiment_key, unit_id, at)``, ``payload()`` (the GrowthBook
  SDK payload of active features), ``apply(record)`` (returns a new snapshot), ``from_records(records)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from schemas import ExperimentStatus, Override, RegistryRecord

__all__ = ["ExperimentSpec", "MetricsSpec", "RegistrySnapshot", "VariationSpec"]


@dataclass(frozen=True, slots=True)
class VariationSpec:
    """One variation: its index (GrowthBook variation id), key, display name and weight."""

    id: int
    key: str
    name: str
    weight: float


@dataclass(frozen=True, slots=True)
class MetricsSpec:
    """Metric names from the metric catalog (defaults apply when an experiment names none)."""

    primary: tuple[str, ...] = ()
    secondary: tuple[str, ...] = ()
    guardrails: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """An experiment as the rest of the system needs it (analysis, validation, simulation)."""

    key: str
    name: str
    status: ExperimentStatus
    feature_key: str
    variations: tuple[VariationSpec, ...]
    coverage: float = 1.0
    hash_attribute: str = "id"
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    start_at: datetime | None = None
    stop_at: datetime | None = None
    version: int = 1
    owner: str = ""
    hypothesis: str = ""

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(v.weight for v in self.variations)


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RegistrySnapshot:
    """The registry at one point: immutable; ``apply`` returns a new snapshot."""

    experiments: Mapping[str, ExperimentSpec] = field(default_factory=lambda: _frozen({}))
    features: Mapping[str, dict[str, Any]] = field(default_factory=lambda: _frozen({}))
    """GrowthBook feature definitions (``defaultValue``, ``rules``) by feature key."""
    overrides: Mapping[tuple[str, str], Override] = field(default_factory=lambda: _frozen({}))
    """(experiment_key, unit_id) → override."""
    saved_groups: Mapping[str, list[Any]] = field(default_factory=lambda: _frozen({}))

    def running_experiments(self) -> list[ExperimentSpec]:
        """Experiments with status running, by key."""
        return [e for _, e in sorted(self.experiments.items()) if e.status is ExperimentStatus.RUNNING]

    def known_variations(self) -> Mapping[str, frozenset[int]]:
        """Experiment key → valid variation ids (every experiment the registry knows, any status)."""
        return {key: frozenset(v.id for v in e.variations) for key, e in self.experiments.items()}

    def override_for(self, experiment_key: str, unit_id: str, at: datetime) -> Override | None:
        """The unit's override in that experiment, if one exists and has not expired at ``at``."""
        override = self.overrides.get((experiment_key, unit_id))
        if override is None or (override.expires_at is not None and override.expires_at <= at):
            return None
        return override

    def payload(self) -> dict[str, Any]:
        """The GrowthBook SDK payload (``{"features": …, "savedGroups": …}``) of what is active."""
        raise NotImplementedError("implemented with the registry fold (issue #3)")

    def apply(self, record: RegistryRecord) -> RegistrySnapshot:
        """The snapshot after one registry change."""
        raise NotImplementedError("implemented with the registry fold (issue #3)")

    @classmethod
    def from_records(cls, records: Iterable[RegistryRecord]) -> RegistrySnapshot:
        """Fold records, oldest first."""
        snapshot = cls()
        for record in records:
            snapshot = snapshot.apply(record)
        return snapshot
