"""Where loadgen's experiments come from: the registry topic, a GrowthBook payload file, or YAML.

Each source yields the same pair: the GrowthBook SDK payload the assignment engine evaluates, and the
:class:`~assignment.registry.ExperimentSpec` list of the running experiments (their variations, keys
and hash attributes) that exposures are built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assignment.payload_file import read_payload_file

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.config import KafkaSettings

__all__ = [
    "ExperimentSource",
    "catalog_event_names",
    "experiments_from_payload",
    "load_features_file",
    "load_from_registry",
]

ExperimentSource = tuple[dict[str, Any], list["ExperimentSpec"]]
"""(GrowthBook SDK payload, running experiments)."""


def catalog_event_names(experiments: list[ExperimentSpec]) -> tuple[str, ...]:
    """The event names the metric catalog of ``experiments`` counts (the defaults' included), sorted:
    what the stream accepts from loadgen and what the simulator produces."""
    from assignment.metrics_catalog import known_event_names

    definitions = [m for spec in experiments for m in spec.metrics.definitions]
    return tuple(sorted(known_event_names(definitions)))


def experiments_from_payload(payload: Mapping[str, Any]) -> list[ExperimentSpec]:
    """One running :class:`ExperimentSpec` per experiment rule of a GrowthBook payload, by key.

    The experiment key is the rule's ``key`` (GrowthBook's default: the feature key); variation keys
    and names come from ``meta`` (default: the index as text); weights default to equal.
    """
    from assignment.registry import ExperimentSpec, VariationSpec
    from schemas import ExperimentStatus

    specs: dict[str, ExperimentSpec] = {}
    for feature_key, feature in (payload.get("features") or {}).items():
        for rule in feature.get("rules") or []:
            variations = rule.get("variations")
            if not variations:
                continue
            count = len(variations)
            meta = rule.get("meta") or []
            weights = rule.get("weights") or [1.0 / count] * count
            specs.setdefault(
                str(rule.get("key") or feature_key),
                ExperimentSpec(
                    key=str(rule.get("key") or feature_key),
                    name=str(rule.get("name") or rule.get("key") or feature_key),
                    status=ExperimentStatus.RUNNING,
                    feature_key=str(feature_key),
                    variations=tuple(
                        VariationSpec(
                            id=i,
                            key=str(meta[i].get("key", i)) if i < len(meta) else str(i),
                            name=str(meta[i].get("name", "")) if i < len(meta) else "",
                            weight=float(weights[i]),
                        )
                        for i in range(count)
                    ),
                    coverage=float(rule.get("coverage", 1.0)),
                    hash_attribute=str(rule.get("hashAttribute") or "id"),
                ),
            )
    return [specs[key] for key in sorted(specs)]


def load_features_file(path: Path) -> ExperimentSource:
    """A GrowthBook payload (JSON) or an xpstream YAML experiments file (via ``assignment.authoring``)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return _load_yaml(path)
    payload = read_payload_file(path)
    return payload, experiments_from_payload(payload)


def _load_yaml(path: Path) -> ExperimentSource:
    """YAML experiments compile through ``assignment.authoring``: the payload and the running ones."""
    from assignment.authoring import load_snapshot

    snapshot = load_snapshot(path)
    return snapshot.payload(), list(snapshot.running_experiments())


def load_from_registry(settings: KafkaSettings, timeout: float) -> ExperimentSource:
    """The registry's running experiments and payload, read from the ``xp.registry`` topic."""
    from assignment.registry_topic import read_registry

    snapshot = read_registry(settings, timeout)
    return snapshot.payload(), list(snapshot.running_experiments())
