"""xpstream's experiments YAML → registry entries (pure; no Kafka).

The document is checked by the pydantic models of :mod:`assignment.authoring.models` (one field at a
time) and the rules that span experiments are checked here: an experiment key defined twice, two
experiments of one feature with different ``default_value``, saved groups a condition refers to,
metric names. Each experiment compiles to an :class:`~schemas.ExperimentDefinition` (its GrowthBook
experiment rule plus authoring metadata) and contributes that rule to a
:class:`~schemas.FeatureDefinition` (key: the experiment's ``feature``, default its key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from assignment.authoring.authored import AuthoredRegistry, Where, with_saved_groups
from assignment.authoring.models import METRIC_ROLES, ExperimentSpec, RegistryDocument
from assignment.authoring.problems import first_problem, yaml_problem
from assignment.metrics_catalog import MetricDefinition, metric_from_dict, resolve_metrics
from schemas import ExperimentDefinition, FeatureDefinition, FeatureStatus
from xpcore.errors import ValidationError

__all__ = ["parse_yaml_experiments"]


def _metrics_catalog(raw_metrics: list[Any], source: str) -> dict[str, MetricDefinition]:
    """The file's ``metrics:`` by name (each checked; ratio parts must exist)."""
    metrics: dict[str, MetricDefinition] = {}
    for index, raw in enumerate(raw_metrics):
        metric = metric_from_dict(raw, f"{source}: metrics[{index}]")
        if metric.name in metrics:
            raise ValidationError(f"{source}: metric {metric.name!r}: name: defined twice")
        metrics[metric.name] = metric
    for metric in metrics.values():
        resolve_metrics([metric.name], metrics, f"{source}: metric {metric.name!r}")
    return metrics


def _compile_experiment(
    spec: ExperimentSpec, where: Where, metrics: Mapping[str, MetricDefinition]
) -> ExperimentDefinition:
    """One checked experiment → its registry entry (rule + metadata)."""
    variations = spec.variations
    names = {str(role): list(values) for role, values in (spec.metrics or {}).items()}
    all_names = [n for role in METRIC_ROLES for n in names.get(role, [])]
    used = resolve_metrics(all_names, metrics, f"{where.prefix}: metrics")
    defined = [m.to_dict() for m in used if metrics.get(m.name) is m]
    rule: dict[str, Any] = {
        "key": spec.key,
        "name": spec.name or spec.key,
        "seed": spec.seed,
        "hashAttribute": spec.hash_attribute,
        "hashVersion": 2,
        "variations": [v.value for v in variations],
        "weights": [float(v.weight or 0.0) for v in variations],
        "coverage": float(spec.coverage),
        "meta": [{"key": v.key, "name": v.name} for v in variations],
    }
    if spec.condition is not None:
        rule["condition"] = spec.condition
    if spec.namespace is not None:
        rule["namespace"] = spec.namespace
    metadata: dict[str, Any] = {"feature": spec.feature}
    if spec.owner:
        metadata["owner"] = spec.owner
    if spec.hypothesis:
        metadata["hypothesis"] = spec.hypothesis
    if spec.start:
        metadata["start"] = spec.start
    if spec.stop:
        metadata["stop"] = spec.stop
    if names:
        metadata["metrics"] = names
    if defined:
        metadata["metric_definitions"] = defined
    if spec.tags is not None:
        metadata["tags"] = spec.tags
    if spec.analysis is not None:
        metadata["analysis"] = spec.analysis.stored()
    if spec.funnel is not None:
        metadata["funnel"] = spec.funnel.stored()
    if spec.decision is not None:
        metadata["decision"] = spec.decision.stored()
    return ExperimentDefinition(
        key=spec.key,
        version=1,
        status=spec.status,
        name=spec.name or spec.key,
        definition=rule,
        metadata=metadata,
    )


def parse_yaml_experiments(document: Mapping[str, Any], source: str) -> AuthoredRegistry:
    """An experiments YAML document (``experiments:``, ``metrics:``, ``saved_groups:``) → entries."""
    try:
        parsed = RegistryDocument.model_validate(document)
    except pydantic.ValidationError as error:
        told = first_problem(error)["loc"]
        if told[:1] in (("experiments",), ("saved_groups",)) and isinstance(document.get("metrics"), list):
            _metrics_catalog(document["metrics"], source)  # the file's metrics are told before the rest
        raise yaml_problem(error, document, source) from None
    metrics = _metrics_catalog(parsed.metrics or [], source)
    groups = parsed.saved_groups or {}
    experiments: list[ExperimentDefinition] = []
    features: dict[str, dict[str, Any]] = {}
    defaults: dict[str, tuple[Any, bool, str]] = {}
    for spec in parsed.experiments:
        where = Where(source, f"experiment {spec.key!r}")
        entry = _compile_experiment(spec, where, metrics)
        if any(e.key == entry.key for e in experiments):
            raise where.error("key", "defined twice in this file")
        experiments.append(entry)
        explicit = spec.default_given
        default = spec.default_value if explicit else spec.variations[0].value
        if spec.feature in defaults:
            first_default, first_explicit, first_key = defaults[spec.feature]
            if explicit and first_explicit and default != first_default:
                raise where.error("default_value", f"conflicts with experiment {first_key!r} (same feature)")
            if explicit and not first_explicit:
                defaults[spec.feature] = (default, True, entry.key)
        else:
            defaults[spec.feature] = (default, explicit, entry.key)
        features.setdefault(spec.feature, {"rules": []})["rules"].append(entry.definition)
    feature_entries = []
    for feature, definition in features.items():
        where = Where(source, f"experiment {defaults[feature][2]!r}")
        full = with_saved_groups({"defaultValue": defaults[feature][0], **definition}, groups, where)
        feature_entries.append(
            FeatureDefinition(key=feature, version=1, status=FeatureStatus.ACTIVE, definition=full)
        )
    return AuthoredRegistry(source, tuple(experiments), tuple(feature_entries), tuple(metrics.values()))
