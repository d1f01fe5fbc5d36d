"""The registry's current state as plain data: what the stream, loadgen and the service read.

The registry is the compacted topic ``xp.registry`` of :class:`schemas.RegistryRecord` changes.
Folding those records in order gives a :class:`RegistrySnapshot`. This module is pure (no Kafka);
the Kafka reader/publisher lives in ``assignment/registry_topic.py``.

Public surface (other packages code against these names):

- :class:`VariationSpec`, :class:`MetricsSpec`, :class:`ExperimentSpec`: one experiment, as authored.
- :class:`RegistrySnapshot`: ``experiments``, ``features``, ``overrides``; ``running_experiments()``,
  ``known_variations()``, ``override_for(experiment_key, unit_id, at)``, ``payload()`` (the GrowthBook
  SDK payload of active features), ``apply(record)`` (returns a new snapshot), ``apply_many(records)``,
  ``from_records(records)``.
- :func:`experiment_spec` (an :class:`~schemas.ExperimentDefinition` as an :class:`ExperimentSpec`) and
  :func:`entry_version` (the version the fold compares to ignore stale records).

Fold rules (docs/registry.md):

- Entries are keyed by :func:`schemas.registry_key`. A record whose version is not greater than the
  last applied version of its key is stale and ignored (so replays, duplicates and a lost race between
  two writers are no-ops). Experiments and features carry ``version``; an override's version is its
  record's ``changed_at`` (ms since the epoch). A ``deleted`` record removes the entry but its version
  is remembered, so an old ``created`` record replayed later stays ignored.
- ``payload()`` serves only ``active`` features; an experiment rule (a rule with ``variations``) is
  served only while its experiment is ``running`` (draft/stopped/unknown: the rule is removed, so units
  fall through to the next rule or the feature's ``defaultValue``, the control value for YAML-authored
  experiments). The rule served is the experiment's own definition (the experiment record is the
  source of truth for its rule). Overrides never appear in the payload (they name units): the service
  applies them through :meth:`RegistrySnapshot.override_for`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from assignment.metrics_catalog import MetricDefinition, metric_from_dict
from schemas import (
    ExperimentDefinition,
    ExperimentStatus,
    FeatureDefinition,
    FeatureStatus,
    Override,
    RegistryChange,
    RegistryPayload,
    RegistryRecord,
)

__all__ = [
    "SAVED_GROUPS_FIELD",
    "ExperimentSpec",
    "MetricsSpec",
    "RegistrySnapshot",
    "VariationSpec",
    "entry_version",
    "experiment_spec",
]

SAVED_GROUPS_FIELD = "savedGroups"
"""Key inside a stored feature definition holding the saved groups its conditions use (merged into the
payload's top-level ``savedGroups``; SDKs never see it on the feature)."""


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
    definitions: tuple[MetricDefinition, ...] = ()
    """The user-defined metrics these names (and their ratio parts) refer to; defaults are not listed."""


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

    def variation(self, key_or_index: str | int) -> VariationSpec | None:
        """The variation with this index (int or digits) or key."""
        for variation in self.variations:
            if variation.key == str(key_or_index):
                return variation
        if isinstance(key_or_index, int) or str(key_or_index).isdigit():
            index = int(key_or_index)
            if 0 <= index < len(self.variations):
                return self.variations[index]
        return None

    def is_scheduled_at(self, at: datetime) -> bool:
        """True when ``at`` is inside the optional start/stop schedule."""
        return (self.start_at is None or self.start_at <= at) and (self.stop_at is None or at < self.stop_at)


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def experiment_spec(definition: ExperimentDefinition) -> ExperimentSpec:
    """The :class:`ExperimentSpec` of a stored experiment (GrowthBook rule + authoring metadata)."""
    rule, meta = definition.definition, definition.metadata
    values = rule.get("variations") or []
    count = len(values)
    weights = rule.get("weights")
    if not (isinstance(weights, list) and len(weights) == count):
        weights = [1.0 / count] * count if count else []
    raw_meta = rule.get("meta")
    rule_meta: list[Any] = raw_meta if isinstance(raw_meta, list) else []
    variations = []
    for index in range(count):
        info = rule_meta[index] if index < len(rule_meta) and isinstance(rule_meta[index], dict) else {}
        key = str(info.get("key", index))
        variations.append(VariationSpec(index, key, str(info.get("name", key)), float(weights[index])))
    raw_metrics, raw_stored = meta.get("metrics"), meta.get("metric_definitions")
    metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
    stored: list[Any] = raw_stored if isinstance(raw_stored, list) else []
    coverage = rule.get("coverage", 1.0)
    return ExperimentSpec(
        key=definition.key,
        name=definition.name or str(rule.get("name") or definition.key),
        status=definition.status,
        feature_key=str(meta.get("feature") or definition.key),
        variations=tuple(variations),
        coverage=float(coverage) if isinstance(coverage, int | float) else 1.0,
        hash_attribute=str(rule.get("hashAttribute") or "id"),
        metrics=MetricsSpec(
            primary=_names(metrics.get("primary")),
            secondary=_names(metrics.get("secondary")),
            guardrails=_names(metrics.get("guardrails")),
            definitions=tuple(metric_from_dict(m) for m in stored),
        ),
        start_at=_parse_time(meta.get("start")),
        stop_at=_parse_time(meta.get("stop")),
        version=definition.version,
        owner=str(meta.get("owner") or ""),
        hypothesis=str(meta.get("hypothesis") or ""),
    )


def entry_version(record: RegistryRecord) -> int | None:
    """The version the fold compares: the payload's ``version`` (experiments, features), the record's
    ``changed_at`` in ms since the epoch (overrides); None for a delete without payload."""
    payload = record.payload
    if isinstance(payload, Override):
        return int(record.changed_at.timestamp() * 1000)
    if payload is None:
        return None
    return payload.version


def _experiment_key_of(rule: Mapping[str, Any], feature_key: str) -> str | None:
    """The experiment key of an experiment rule (GrowthBook: ``key`` defaults to the feature key)."""
    if not isinstance(rule.get("variations"), list):
        return None
    return str(rule.get("key") or feature_key)


@dataclass(frozen=True)
class RegistrySnapshot:
    """The registry at one point: immutable; ``apply`` returns a new snapshot."""

    experiments: Mapping[str, ExperimentSpec] = field(default_factory=lambda: _frozen({}))
    features: Mapping[str, dict[str, Any]] = field(default_factory=lambda: _frozen({}))
    """GrowthBook feature definitions (``defaultValue``, ``rules``) by feature key (active and archived)."""
    overrides: Mapping[tuple[str, str], Override] = field(default_factory=lambda: _frozen({}))
    """(experiment_key, unit_id) → override."""
    saved_groups: Mapping[str, list[Any]] = field(default_factory=lambda: _frozen({}))
    records: Mapping[str, RegistryRecord] = field(default_factory=lambda: _frozen({}))
    """Registry key → the last applied record (deletes included): the audit head of every entry."""
    versions: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    """Registry key → last applied version (kept after a delete, see :func:`entry_version`)."""
    revision: int = 0
    """How many records changed this snapshot (stale ones do not count)."""

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

    def live_entries(self) -> dict[str, RegistryPayload]:
        """Registry key → current entry, for every entry not deleted."""
        return {
            key: record.payload
            for key, record in self.records.items()
            if record.change is not RegistryChange.DELETED and record.payload is not None
        }

    def experiment_definition(self, key: str) -> ExperimentDefinition | None:
        """The stored experiment (GrowthBook rule + metadata), if it exists."""
        record = self.records.get(f"experiment:{key}")
        if record is None or record.change is RegistryChange.DELETED:
            return None
        payload = record.payload
        return payload if isinstance(payload, ExperimentDefinition) else None

    def payload(self, at: datetime | None = None) -> dict[str, Any]:
        """The GrowthBook SDK payload (``{"features": …, "savedGroups": …}``) of what is active.

        Active features only; experiment rules only while their experiment is running (and, when ``at``
        is given, inside its start/stop schedule). Overrides are never included.
        """
        features: dict[str, Any] = {}
        for feature_key in sorted(self.features):
            definition = self.features[feature_key]
            record = self.records.get(f"feature:{feature_key}")
            if record is None or not isinstance(record.payload, FeatureDefinition):
                continue
            if record.payload.status is not FeatureStatus.ACTIVE:
                continue
            rules = []
            for rule in definition.get("rules") or []:
                experiment_key = _experiment_key_of(rule, feature_key) if isinstance(rule, dict) else None
                if experiment_key is not None:
                    spec = self.experiments.get(experiment_key)
                    if spec is None or spec.status is not ExperimentStatus.RUNNING:
                        continue
                    if at is not None and not spec.is_scheduled_at(at):
                        continue
                    stored = self.experiment_definition(experiment_key)
                    if stored is not None:
                        rule = dict(stored.definition)
                rules.append(rule)
            features[feature_key] = {**definition, "rules": rules}
        return {"features": features, "savedGroups": dict(self.saved_groups)}

    def next_boundary(self, after: datetime) -> datetime | None:
        """The first start or stop time of a running experiment strictly after ``after`` (None:
        none), i.e. when :meth:`payload` at ``after`` stops being the payload of the moment."""
        times = [
            moment
            for spec in self.experiments.values()
            if spec.status is ExperimentStatus.RUNNING
            for moment in (spec.start_at, spec.stop_at)
            if moment is not None and moment > after
        ]
        return min(times, default=None)

    def apply(self, record: RegistryRecord) -> RegistrySnapshot:
        """The snapshot after one registry change (itself when the record is stale)."""
        return self.apply_many((record,))

    def apply_many(self, records: Iterable[RegistryRecord]) -> RegistrySnapshot:
        """The snapshot after several changes, in order (itself when all are stale). Same result as
        applying them one by one, but copies the mappings once per batch instead of once per record."""
        fold = _Fold(self)
        for record in records:
            fold.apply(record)
        return fold.result()

    @classmethod
    def from_records(cls, records: Iterable[RegistryRecord]) -> RegistrySnapshot:
        """Fold records, oldest first."""
        return cls().apply_many(records)


class _Fold:
    """Mutable working copies of a snapshot's mappings, made on first write (one batch of records)."""

    def __init__(self, base: RegistrySnapshot) -> None:
        self.base = base
        self.applied = 0
        self.versions: dict[str, int] | None = None
        self.records: dict[str, RegistryRecord] | None = None
        self.experiments: dict[str, ExperimentSpec] | None = None
        self.features: dict[str, dict[str, Any]] | None = None
        self.overrides: dict[tuple[str, str], Override] | None = None

    def apply(self, record: RegistryRecord) -> None:
        version = entry_version(record)
        current = (self.versions if self.versions is not None else self.base.versions).get(record.key)
        if version is not None and current is not None and version <= current:
            return
        if self.versions is None or self.records is None:
            self.versions, self.records = dict(self.base.versions), dict(self.base.records)
        if version is not None:
            self.versions[record.key] = version
        self.records[record.key] = record
        self.applied += 1
        deleted = record.change is RegistryChange.DELETED
        payload = record.payload
        name = record.key.split(":", 1)[1]
        if record.kind == "experiment":
            if self.experiments is None:
                self.experiments = dict(self.base.experiments)
            if deleted or not isinstance(payload, ExperimentDefinition):
                self.experiments.pop(name, None)
            else:
                self.experiments[payload.key] = experiment_spec(payload)
        elif record.kind == "feature":
            if self.features is None:
                self.features = dict(self.base.features)
            if deleted or not isinstance(payload, FeatureDefinition):
                self.features.pop(name, None)
            else:
                definition = {k: v for k, v in payload.definition.items() if k != SAVED_GROUPS_FIELD}
                self.features[payload.key] = definition
        else:
            if self.overrides is None:
                self.overrides = dict(self.base.overrides)
            target = _override_target(record)
            if deleted or not isinstance(payload, Override):
                self.overrides.pop(target, None)
            else:
                self.overrides[target] = payload

    def result(self) -> RegistrySnapshot:
        if not self.applied or self.records is None or self.versions is None:
            return self.base
        changes: dict[str, Any] = {
            "records": _frozen(self.records),
            "versions": _frozen(self.versions),
            "revision": self.base.revision + self.applied,
        }
        if self.experiments is not None:
            changes["experiments"] = _frozen(self.experiments)
        if self.features is not None:
            changes["features"] = _frozen(self.features)
            changes["saved_groups"] = _frozen(_saved_groups(self.records))
        if self.overrides is not None:
            changes["overrides"] = _frozen(self.overrides)
        return replace(self.base, **changes)


def _override_target(record: RegistryRecord) -> tuple[str, str]:
    if isinstance(record.payload, Override):
        return (record.payload.experiment_key, record.payload.unit_id)
    # override:EXPERIMENT:UNIT — experiment keys may not hold ':' in practice; unit ids may.
    _, experiment_key, unit_id = record.key.split(":", 2)
    return (experiment_key, unit_id)


def _saved_groups(records: Mapping[str, RegistryRecord]) -> dict[str, list[Any]]:
    """Saved groups carried by live active features (a later feature key wins on a name clash)."""
    groups: dict[str, list[Any]] = {}
    for key in sorted(records):
        record = records[key]
        payload = record.payload
        if record.change is RegistryChange.DELETED or not isinstance(payload, FeatureDefinition):
            continue
        carried = payload.definition.get(SAVED_GROUPS_FIELD)
        if isinstance(carried, dict):
            groups.update(carried)
    return groups
