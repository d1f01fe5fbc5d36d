"""Experiments as people write them (YAML) → registry entries (pure; no Kafka).

Two input formats, told apart by their top-level keys (docs/registry.md has the full reference):

- **xpstream YAML**: ``experiments:`` (a list), optional ``metrics:`` (user-defined metrics) and
  ``saved_groups:``. Each experiment compiles to an :class:`~schemas.ExperimentDefinition` (its
  GrowthBook experiment rule plus authoring metadata) and contributes that rule to a
  :class:`~schemas.FeatureDefinition` (key: the experiment's ``feature``, default its key).
- **GrowthBook SDK payload** (``{"features": …, "savedGroups": …}``, JSON or YAML): taken as is; one
  feature entry per feature and one running experiment entry per experiment rule.

Every problem raises one :class:`~xpcore.errors.ValidationError` naming the file, the experiment and
the field, e.g. ``experiments.yaml: experiment 'checkout': variations[1].weight: must be ≥ 0``.

::

    authored = load_registry_file(Path("examples/experiments.yaml"))
    authored.experiments, authored.features       # entries with version 1 (the publisher renumbers)
    authored.snapshot().payload()                  # what an SDK would get if this file were the registry
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from assignment.metrics_catalog import MetricDefinition, metric_from_dict, resolve_metrics
from assignment.registry import SAVED_GROUPS_FIELD, RegistrySnapshot
from schemas import (
    ExperimentDefinition,
    ExperimentStatus,
    FeatureDefinition,
    FeatureStatus,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    registry_key,
)
from xpcore.errors import ValidationError

__all__ = [
    "KEY_PATTERN",
    "WEIGHT_TOLERANCE",
    "AuthoredRegistry",
    "load_payload_file",
    "load_registry_file",
    "load_snapshot",
    "parse_registry_document",
    "parse_registry_text",
]

WEIGHT_TOLERANCE: Final = 1e-6
"""Variation weights must sum to 1 within this tolerance."""
KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
"""Experiment, feature and variation keys: letters, digits, ``_ . -`` (no ``:``, used in registry keys)."""

_TOP_LEVEL: Final = {"experiments", "metrics", "saved_groups"}
_EXPERIMENT_FIELDS: Final = {
    "key",
    "name",
    "hypothesis",
    "owner",
    "feature",
    "status",
    "variations",
    "coverage",
    "condition",
    "namespace",
    "hash_attribute",
    "seed",
    "start",
    "stop",
    "metrics",
    "default_value",
    "tags",
    "analysis",
}
_VARIATION_FIELDS: Final = {"key", "name", "weight", "value"}
_METRIC_ROLES: Final = ("primary", "secondary", "guardrails")
_ANALYSIS_CHOICES: Final = {
    "method": ("sequential", "frequentist", "bayesian"),
    "correction": ("none", "holm", "bh"),
}
_ANALYSIS_FIELDS: Final = ("method", "alpha", "cuped", "correction", "planned_units")


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


class _Where:
    """Builds ``file: experiment 'k': field: problem`` messages."""

    def __init__(self, source: str, subject: str) -> None:
        self.prefix = f"{source}: {subject}"

    def error(self, field: str, problem: str) -> ValidationError:
        return ValidationError(f"{self.prefix}: {field}: {problem}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_ready(value: Any, where: _Where, field: str) -> Any:
    """YAML values → JSON values (dates as ISO strings); rejects what JSON cannot hold."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v, where, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v, where, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise where.error(field, "must be a finite number")
        return value
    raise where.error(field, f"unsupported value of type {type(value).__name__}")


def _timestamp(value: Any, where: _Where, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise where.error(field, f"{value!r} is not an ISO 8601 time like 2026-12-01T09:00:00Z") from None
    else:
        raise where.error(field, "must be an ISO 8601 time like 2026-12-01T09:00:00Z")
    if parsed.tzinfo is None:
        raise where.error(field, "needs a time zone (e.g. 2026-12-01T09:00:00Z)")
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _key(value: Any, where: _Where, field: str) -> str:
    if not isinstance(value, str) or not KEY_PATTERN.match(value):
        raise where.error(field, "must be letters, digits, '_', '.', '-' (no spaces or ':'), ≤ 200 chars")
    return value


def _variations(spec: Any, where: _Where) -> list[dict[str, Any]]:
    if not isinstance(spec, list) or len(spec) < 2:
        raise where.error("variations", "needs at least 2 variations")
    variations: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(spec):
        field = f"variations[{index}]"
        if isinstance(raw, str):
            raw = {"key": raw}
        if not isinstance(raw, dict):
            raise where.error(field, "must be a mapping with key, name, weight (and optional value)")
        unknown = sorted(set(raw) - _VARIATION_FIELDS)
        if unknown:
            raise where.error(f"{field}.{unknown[0]}", "unknown field")
        key = _key(raw.get("key"), where, f"{field}.key")
        if key in seen:
            raise where.error(f"{field}.key", f"duplicate variation key {key!r}")
        seen.add(key)
        weight = raw.get("weight")
        if weight is not None and (not _is_number(weight) or weight < 0):
            raise where.error(f"{field}.weight", "must be ≥ 0" if _is_number(weight) else "must be a number")
        name = raw.get("name", key)
        if not isinstance(name, str):
            raise where.error(f"{field}.name", "must be a string")
        value = _json_ready(raw.get("value", key), where, f"{field}.value")
        variations.append({"key": key, "name": name, "weight": weight, "value": value})
    given = [v["weight"] is not None for v in variations]
    if any(given) and not all(given):
        missing = given.index(False)
        raise where.error(f"variations[{missing}].weight", "give every variation a weight, or none")
    if not any(given):
        for variation in variations:
            variation["weight"] = 1.0 / len(variations)
    total = sum(float(v["weight"]) for v in variations)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise where.error("variations", f"weights must sum to 1 (they sum to {total:g})")
    return variations


def _namespace(spec: Any, where: _Where) -> list[Any] | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        spec = [spec.get("name"), spec.get("start"), spec.get("end")]
    if not (isinstance(spec, list) and len(spec) == 3):
        raise where.error("namespace", "must be [name, start, end] or {name, start, end}")
    name, start, end = spec
    if not isinstance(name, str) or not name:
        raise where.error("namespace", "name must be a non-empty string")
    if not (_is_number(start) and _is_number(end) and 0 <= start < end <= 1):
        raise where.error("namespace", "needs 0 ≤ start < end ≤ 1")
    return [name, start, end]


def _metric_names(spec: Any, where: _Where) -> dict[str, list[str]]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise where.error("metrics", "must be a mapping with primary, secondary, guardrails")
    names: dict[str, list[str]] = {}
    for role, value in spec.items():
        if role not in _METRIC_ROLES:
            raise where.error(f"metrics.{role}", "unknown role (expected primary, secondary, guardrails)")
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise where.error(f"metrics.{role}", "must be a list of metric names")
        names[str(role)] = list(value)
    return names


def _analysis(spec: Any, where: _Where) -> dict[str, Any]:
    """The optional ``analysis:`` block: how ``xp results`` analyses the experiment (jobs/analysis_plan)."""
    if not isinstance(spec, dict):
        raise where.error("analysis", f"must be a mapping with {', '.join(_ANALYSIS_FIELDS)}")
    unknown = sorted(set(spec) - set(_ANALYSIS_FIELDS))
    if unknown:
        raise where.error(f"analysis.{unknown[0]}", f"unknown field (expected {', '.join(_ANALYSIS_FIELDS)})")
    block: dict[str, Any] = {}
    for field, choices in _ANALYSIS_CHOICES.items():
        if field in spec:
            if spec[field] not in choices:
                raise where.error(f"analysis.{field}", f"must be one of {', '.join(choices)}")
            block[field] = spec[field]
    if "alpha" in spec:
        alpha = spec["alpha"]
        if not _is_number(alpha) or not 0 < alpha < 1:
            raise where.error("analysis.alpha", "must be a number in (0, 1), e.g. 0.05")
        block["alpha"] = float(alpha)
    if "cuped" in spec:
        if not isinstance(spec["cuped"], bool):
            raise where.error("analysis.cuped", "must be true or false")
        block["cuped"] = spec["cuped"]
    if "planned_units" in spec:
        planned = spec["planned_units"]
        if isinstance(planned, bool) or not isinstance(planned, int) or planned < 1:
            raise where.error("analysis.planned_units", "must be a whole number of units >= 1")
        block["planned_units"] = planned
    return block


def _compile_experiment(
    spec: Any, index: int, source: str, metrics: Mapping[str, MetricDefinition]
) -> tuple[ExperimentDefinition, str, Any, bool]:
    """One YAML experiment → (entry, feature key, feature default value, default given explicitly)."""
    if not isinstance(spec, dict):
        raise ValidationError(f"{source}: experiments[{index}]: must be a mapping with key, variations, …")
    key = _key(spec.get("key"), _Where(source, f"experiments[{index}]"), "key")
    where = _Where(source, f"experiment {key!r}")
    unknown = sorted(set(spec) - _EXPERIMENT_FIELDS)
    if unknown:
        raise where.error(unknown[0], "unknown field")
    try:
        status = ExperimentStatus(spec.get("status", "draft"))
    except ValueError:
        raise where.error("status", "must be draft, running or stopped") from None
    variations = _variations(spec.get("variations"), where)
    coverage = spec.get("coverage", 1.0)
    if not _is_number(coverage) or not 0 <= coverage <= 1:
        raise where.error("coverage", "must be a number in [0, 1]")
    hash_attribute = spec.get("hash_attribute", "id")
    if not isinstance(hash_attribute, str) or not hash_attribute:
        raise where.error("hash_attribute", "must be a non-empty attribute name")
    seed = spec.get("seed", key)
    if not isinstance(seed, str) or not seed:
        raise where.error("seed", "must be a non-empty string")
    condition = spec.get("condition")
    if condition is not None and not isinstance(condition, dict):
        raise where.error("condition", "must be a mapping (a GrowthBook condition)")
    namespace = _namespace(spec.get("namespace"), where)
    start = _timestamp(spec.get("start"), where, "start")
    stop = _timestamp(spec.get("stop"), where, "stop")
    if start and stop and stop <= start:
        raise where.error("stop", "must be after start")
    feature = _key(spec.get("feature", key), where, "feature")
    for field in ("name", "hypothesis", "owner"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            raise where.error(field, "must be a string")
    names = _metric_names(spec.get("metrics"), where)
    all_names = [n for role in _METRIC_ROLES for n in names.get(role, [])]
    used = resolve_metrics(all_names, metrics, f"{where.prefix}: metrics")
    defined = [m.to_dict() for m in used if metrics.get(m.name) is m]
    rule: dict[str, Any] = {
        "key": key,
        "name": spec.get("name") or key,
        "seed": seed,
        "hashAttribute": hash_attribute,
        "hashVersion": 2,
        "variations": [v["value"] for v in variations],
        "weights": [float(v["weight"]) for v in variations],
        "coverage": float(coverage),
        "meta": [{"key": v["key"], "name": v["name"]} for v in variations],
    }
    if condition is not None:
        rule["condition"] = _json_ready(condition, where, "condition")
    if namespace is not None:
        rule["namespace"] = namespace
    metadata: dict[str, Any] = {"feature": feature}
    for field in ("owner", "hypothesis"):
        if spec.get(field):
            metadata[field] = spec[field]
    if start:
        metadata["start"] = start
    if stop:
        metadata["stop"] = stop
    if names:
        metadata["metrics"] = names
    if defined:
        metadata["metric_definitions"] = defined
    if spec.get("tags") is not None:
        metadata["tags"] = _json_ready(spec["tags"], where, "tags")
    if spec.get("analysis") is not None:
        metadata["analysis"] = _analysis(spec["analysis"], where)
    entry = ExperimentDefinition(
        key=key,
        version=1,
        status=status,
        name=spec.get("name") or key,
        definition=rule,
        metadata=metadata,
    )
    explicit = "default_value" in spec
    default = (
        _json_ready(spec["default_value"], where, "default_value") if explicit else variations[0]["value"]
    )
    return entry, feature, default, explicit


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


def _with_groups(definition: dict[str, Any], groups: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    wanted = sorted(_referenced_groups(definition.get("rules")))
    missing = [g for g in wanted if g not in groups]
    if missing:
        raise where.error("condition", f"saved group {missing[0]!r} is not defined (saved_groups:)")
    if wanted:
        return {**definition, SAVED_GROUPS_FIELD: {g: groups[g] for g in wanted}}
    return definition


def _parse_yaml_experiments(document: Mapping[str, Any], source: str) -> AuthoredRegistry:
    unknown = sorted(set(document) - _TOP_LEVEL)
    if unknown:
        raise ValidationError(
            f"{source}: {unknown[0]}: unknown top-level field (expected experiments, metrics, saved_groups)"
        )
    raw_metrics = document.get("metrics") or []
    if not isinstance(raw_metrics, list):
        raise ValidationError(f"{source}: metrics: must be a list of metric definitions")
    metrics: dict[str, MetricDefinition] = {}
    for index, raw in enumerate(raw_metrics):
        metric = metric_from_dict(raw, f"{source}: metrics[{index}]")
        if metric.name in metrics:
            raise ValidationError(f"{source}: metric {metric.name!r}: name: defined twice")
        metrics[metric.name] = metric
    for metric in metrics.values():  # ratio parts must exist
        resolve_metrics([metric.name], metrics, f"{source}: metric {metric.name!r}")
    groups = document.get("saved_groups") or {}
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise ValidationError(f"{source}: saved_groups: must map group ids to lists of values")
    raw_experiments = document.get("experiments")
    if not isinstance(raw_experiments, list) or not raw_experiments:
        raise ValidationError(f"{source}: experiments: must be a non-empty list")
    experiments: list[ExperimentDefinition] = []
    features: dict[str, dict[str, Any]] = {}
    defaults: dict[str, tuple[Any, bool, str]] = {}
    for index, spec in enumerate(raw_experiments):
        entry, feature, default, explicit = _compile_experiment(spec, index, source, metrics)
        where = _Where(source, f"experiment {entry.key!r}")
        if any(e.key == entry.key for e in experiments):
            raise where.error("key", "defined twice in this file")
        experiments.append(entry)
        if feature in defaults:
            first_default, first_explicit, first_key = defaults[feature]
            if explicit and first_explicit and default != first_default:
                raise where.error("default_value", f"conflicts with experiment {first_key!r} (same feature)")
            if explicit and not first_explicit:
                defaults[feature] = (default, True, entry.key)
        else:
            defaults[feature] = (default, explicit, entry.key)
        features.setdefault(feature, {"rules": []})["rules"].append(entry.definition)
    feature_entries = []
    for feature, definition in features.items():
        where = _Where(source, f"experiment {defaults[feature][2]!r}")
        full = _with_groups({"defaultValue": defaults[feature][0], **definition}, groups, where)
        feature_entries.append(
            FeatureDefinition(key=feature, version=1, status=FeatureStatus.ACTIVE, definition=full)
        )
    return AuthoredRegistry(source, tuple(experiments), tuple(feature_entries), tuple(metrics.values()))


def _parse_growthbook_payload(document: Mapping[str, Any], source: str) -> AuthoredRegistry:
    from assignment.compiled import validate_payload

    try:
        validate_payload(dict(document))
    except ValidationError as error:
        raise ValidationError(f"{source}: {error}") from None
    groups = document.get("savedGroups") or {}
    experiments: dict[str, ExperimentDefinition] = {}
    features: list[FeatureDefinition] = []
    for feature_key, spec in (document.get("features") or {}).items():
        where = _Where(source, f"feature {feature_key!r}")
        _key(feature_key, _Where(source, "features"), str(feature_key))
        definition = _json_ready(spec, where, "definition")
        for index, rule in enumerate(definition.get("rules") or []):
            if not isinstance(rule.get("variations"), list):
                continue
            key = str(rule.get("key") or feature_key)
            _key(key, where, f"rules[{index}].key")
            if key in experiments:
                raise where.error(f"rules[{index}].key", f"experiment {key!r} appears in two rules")
            experiments[key] = ExperimentDefinition(
                key=key,
                version=1,
                status=ExperimentStatus.RUNNING,
                name=str(rule.get("name") or key),
                definition=rule,
                metadata={"feature": feature_key, "source": "growthbook"},
            )
        full = _with_groups(definition, groups, where)
        features.append(
            FeatureDefinition(key=feature_key, version=1, status=FeatureStatus.ACTIVE, definition=full)
        )
    return AuthoredRegistry(source, tuple(experiments.values()), tuple(features))


def parse_registry_document(document: Any, source: str) -> AuthoredRegistry:
    """A parsed YAML/JSON document → entries; ``source`` names the file in error messages."""
    if not isinstance(document, dict):
        raise ValidationError(
            f"{source}: must be a mapping with `experiments:` or a GrowthBook `features:` payload"
        )
    if "features" in document:
        if "experiments" in document:
            raise ValidationError(
                f"{source}: use either `experiments:` (YAML) or `features:` (GrowthBook), not both"
            )
        return _parse_growthbook_payload(document, source)
    return _parse_yaml_experiments(document, source)


def parse_registry_text(text: str, source: str) -> AuthoredRegistry:
    """YAML or JSON text → entries (JSON is YAML, but JSON errors are reported as JSON errors)."""
    import yaml

    stripped = text.lstrip()
    if stripped.startswith("{") and source.endswith(".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(f"{source}: invalid JSON at line {error.lineno}: {error.msg}") from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or "cannot parse"
            raise ValidationError(f"{source}: invalid YAML{line}: {problem}") from None
    return parse_registry_document(document, source)


def load_registry_file(path: Path) -> AuthoredRegistry:
    """Read and validate an experiments YAML or a GrowthBook payload file (error messages name the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text") from None
    authored = parse_registry_text(text, path.name)
    from assignment.compiled import validate_payload

    try:
        validate_payload(authored.snapshot().payload())
    except ValidationError as error:
        raise ValidationError(f"{path.name}: {error}") from None
    return authored


def load_payload_file(path: Path) -> dict[str, Any]:
    """The GrowthBook payload a YAML or payload file serves (running experiments only), for
    ``xp assign eval`` and tests."""
    return load_registry_file(path).snapshot().payload()


def load_snapshot(path: Path) -> RegistrySnapshot:
    """The registry snapshot a file alone would make (for loadgen and the stream's file mode)."""
    return load_registry_file(path).snapshot()
