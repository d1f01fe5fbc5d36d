"""Turning intentions into registry records: plan a file's changes, build override records (pure).

::

    changes = plan_changes(snapshot, authored, actor="alice", now=now)      # [] when nothing changed
    record = override_change(snapshot, "checkout", "u-42", "green", actor="qa", now=now)
    record = remove_override_change(snapshot, "checkout", "u-42", actor="qa", now=now)

Versions: a new entry gets 1 + the last version its key ever had (deleted entries included); an update
gets 1 + the current version. Status transitions allowed (docs/registry.md):

    draft   → draft | running | stopped
    running → running | stopped          (not back to draft: units have been exposed)
    stopped → stopped                     (a stopped experiment is not restarted: use a new key)

Once an experiment has run (running or stopped), its variations (keys, count, values), weights, seed,
hash attribute and hash version are frozen, because changing them moves units between variations and
breaks the analysis. Coverage, condition, namespace, schedule, names and metrics may change.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from assignment.authoring import AuthoredRegistry
from assignment.registry import RegistrySnapshot
from schemas import (
    ExperimentDefinition,
    ExperimentStatus,
    FeatureDefinition,
    Override,
    RegistryChange,
    RegistryKind,
    RegistryPayload,
    RegistryRecord,
    registry_key,
)
from xpcore.errors import ValidationError

__all__ = [
    "ALLOWED_TRANSITIONS",
    "FROZEN_RULE_FIELDS",
    "ChangeSummary",
    "check_transition",
    "override_change",
    "override_notes",
    "plan_changes",
    "remove_override_change",
    "summarize",
]

ALLOWED_TRANSITIONS: Final = {
    ExperimentStatus.DRAFT: frozenset(ExperimentStatus),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.STOPPED}),
    ExperimentStatus.STOPPED: frozenset({ExperimentStatus.STOPPED}),
}
FROZEN_RULE_FIELDS: Final = ("variations", "weights", "meta", "seed", "hashAttribute", "hashVersion")
"""GrowthBook rule fields that may not change once an experiment has run."""

_KIND: Final = {
    ExperimentDefinition: RegistryKind.EXPERIMENT,
    FeatureDefinition: RegistryKind.FEATURE,
    Override: RegistryKind.OVERRIDE,
}


def _record(
    payload: RegistryPayload, change: RegistryChange, actor: str, now: datetime, key: str | None = None
) -> RegistryRecord:
    return RegistryRecord(
        record_id=uuid.uuid4().hex,
        kind=_KIND[type(payload)],
        key=key or registry_key(payload),
        change=change,
        changed_by=actor,
        changed_at=now,
        payload=payload,
    )


def _content(entry: RegistryPayload) -> Any:
    """The entry without its version, as JSON values (what a round trip through Kafka gives)."""
    data = msgspec.json.decode(msgspec.json.encode(entry))
    data.pop("version", None)
    return data


def check_transition(old: ExperimentDefinition, new: ExperimentDefinition, source: str) -> None:
    """ValidationError ``source: experiment 'k': field: why`` when ``old → new`` is not allowed."""
    where = f"{source}: experiment {new.key!r}"
    if new.status not in ALLOWED_TRANSITIONS[old.status]:
        hint = "stop it instead" if old.status is ExperimentStatus.RUNNING else "create a new experiment key"
        raise ValidationError(f"{where}: status: cannot go from {old.status} to {new.status} ({hint})")
    if old.status is ExperimentStatus.DRAFT:
        return
    meta_keys = [m.get("key") for m in old.definition.get("meta") or [] if isinstance(m, dict)]
    new_keys = [m.get("key") for m in new.definition.get("meta") or [] if isinstance(m, dict)]
    for field in FROZEN_RULE_FIELDS:
        before, after = old.definition.get(field), new.definition.get(field)
        if field == "meta":
            before, after = meta_keys, new_keys
        if before != after:
            name = {"hashAttribute": "hash_attribute", "meta": "variations", "hashVersion": "hash_version"}
            raise ValidationError(
                f"{where}: {name.get(field, field)}: cannot change once the experiment has run "
                f"(it is {old.status}); create a new experiment key"
            )


def _with_version(entry: ExperimentDefinition | FeatureDefinition, version: int) -> RegistryPayload:
    return msgspec.structs.replace(entry, version=version)


def plan_changes(
    snapshot: RegistrySnapshot,
    authored: AuthoredRegistry,
    *,
    actor: str,
    now: datetime,
    prune: bool = False,
) -> list[RegistryRecord]:
    """The records that make the registry match the file: created/updated entries that differ (ignoring
    versions), and with ``prune`` deleted experiments/features the file no longer declares."""
    live = snapshot.live_entries()
    records: list[RegistryRecord] = []
    wanted: set[str] = set()
    for entry in authored.entries():
        key = registry_key(entry)
        wanted.add(key)
        current = live.get(key)
        if current is None:
            version = snapshot.versions.get(key, 0) + 1
            records.append(_record(_with_version(entry, version), RegistryChange.CREATED, actor, now))
            continue
        if _content(current) == _content(entry):
            continue
        if isinstance(current, ExperimentDefinition) and isinstance(entry, ExperimentDefinition):
            check_transition(current, entry, authored.source)
        assert not isinstance(current, Override)
        records.append(_record(_with_version(entry, current.version + 1), RegistryChange.UPDATED, actor, now))
    if prune:
        for key, current in sorted(live.items()):
            if key in wanted or isinstance(current, Override):
                continue
            records.append(
                _record(_with_version(current, current.version + 1), RegistryChange.DELETED, actor, now)
            )
    return records


def override_change(
    snapshot: RegistrySnapshot,
    experiment_key: str,
    unit_id: str,
    variation: str | int,
    *,
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
    reason: str = "",
) -> RegistryRecord:
    """A record forcing ``unit_id`` into ``variation`` (index or key) of a known experiment."""
    experiment = snapshot.experiments.get(experiment_key)
    if experiment is None:
        raise ValidationError(f"experiment {experiment_key!r}: not in the registry")
    chosen = experiment.variation(variation)
    if chosen is None:
        keys = ", ".join(f"{v.id}={v.key}" for v in experiment.variations)
        raise ValidationError(
            f"experiment {experiment_key!r}: variation: {variation!r} is not one of its variations ({keys})"
        )
    if expires_at is not None and expires_at <= now:
        raise ValidationError(f"experiment {experiment_key!r}: expires: must be in the future")
    if not unit_id:
        raise ValidationError(f"experiment {experiment_key!r}: unit: must not be empty")
    override = Override(
        experiment_key=experiment_key,
        unit_id=unit_id,
        variation_id=chosen.id,
        variation_key=chosen.key,
        expires_at=expires_at,
        reason=reason,
    )
    exists = (experiment_key, unit_id) in snapshot.overrides
    return _record(override, RegistryChange.UPDATED if exists else RegistryChange.CREATED, actor, now)


def override_notes(snapshot: RegistrySnapshot, experiment_key: str) -> list[str]:
    """What an operator must know before relying on an override of this experiment (pure).

    The service forces a variation only for a unit the experiment's rule reaches: its targeting condition
    is checked first (GrowthBook evaluates a rule's ``condition`` before forced variations), so an
    override for a unit outside the targeting does nothing. The unit's attributes are not known here, so
    this is a note, not a refusal. Coverage and namespaces do not stop an override."""
    record = snapshot.records.get(f"experiment:{experiment_key}")
    payload = record.payload if record is not None else None
    definition = payload.definition if isinstance(payload, ExperimentDefinition) else {}
    gates = [name for name in ("condition", "parentConditions") if definition.get(name)]
    if not gates:
        return []
    shown = json.dumps(definition.get("condition") or definition.get("parentConditions"), sort_keys=True)
    if len(shown) > 200:
        shown = shown[:199] + "…"
    return [
        f"experiment {experiment_key!r} has targeting ({shown}): the override applies only while the unit "
        "matches it; for a unit outside the targeting it does nothing"
    ]


def remove_override_change(
    snapshot: RegistrySnapshot, experiment_key: str, unit_id: str, *, actor: str, now: datetime
) -> RegistryRecord:
    """A record deleting the unit's override (the removed override is kept in the record, for the audit)."""
    current = snapshot.overrides.get((experiment_key, unit_id))
    if current is None:
        raise ValidationError(f"experiment {experiment_key!r}: unit {unit_id!r} has no override")
    return _record(current, RegistryChange.DELETED, actor, now)


@dataclass(frozen=True, slots=True)
class ChangeSummary:
    """One planned or published change, for people and ``--format json``."""

    change: str
    key: str
    version: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "key": self.key, "version": self.version, "detail": self.detail}


def summarize(snapshot: RegistrySnapshot, record: RegistryRecord) -> ChangeSummary:
    """What a record changes, in a few words (the fields that differ from the current entry)."""
    payload = record.payload
    version = None if payload is None or isinstance(payload, Override) else payload.version
    current = snapshot.live_entries().get(record.key)
    if isinstance(payload, Override):
        detail = f"variation {payload.variation_id} ({payload.variation_key})"
        if payload.expires_at is not None:
            detail += f", expires {payload.expires_at.isoformat()}"
    elif record.change is RegistryChange.UPDATED and current is not None and payload is not None:
        before, after = _content(current), _content(payload)
        fields = []
        for name in sorted(set(before) | set(after)):
            if isinstance(before.get(name), dict) and isinstance(after.get(name), dict):
                inner = sorted(
                    k
                    for k in set(before[name]) | set(after[name])
                    if before[name].get(k) != after[name].get(k)
                )
                fields += [f"{name}.{k}" for k in inner]
            elif before.get(name) != after.get(name):
                fields.append(name)
        detail = ", ".join(fields)
    elif record.change is RegistryChange.DELETED:
        detail = "removed from the registry"
    elif isinstance(payload, ExperimentDefinition):
        detail = f"status {payload.status}"
    else:
        detail = ""
    return ChangeSummary(str(record.change), record.key, version, detail)
