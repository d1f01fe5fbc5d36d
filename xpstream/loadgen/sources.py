"""Where loadgen's experiments come from: the registry topic, a GrowthBook payload file, or YAML.

Each source yields the same pair: the GrowthBook SDK payload the assignment engine evaluates, and the
:class:`~assignment.registry.ExperimentSpec` list of the running experiments (their variations, keys
and hash attributes) that exposures are built from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xpcore.errors import NotYetAvailableError, ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.config import KafkaSettings

__all__ = ["ExperimentSource", "experiments_from_payload", "load_features_file", "load_from_registry"]

ExperimentSource = tuple[dict[str, Any], list["ExperimentSpec"]]
"""(GrowthBook SDK payload, running experiments)."""


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
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValidationError(f"{path}: cannot read features file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ValidationError(f"{path}: features file is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from error
    from assignment import validate_payload

    try:
        validate_payload(payload)
    except ValidationError as error:
        raise ValidationError(f"{path}: {error}") from error
    return payload, experiments_from_payload(payload)


def _load_yaml(path: Path) -> ExperimentSource:
    """YAML experiments compile through the registry engineer's ``assignment.authoring`` (issue #3)."""
    try:
        from assignment.authoring import load_snapshot  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise NotYetAvailableError(
            f"{path}: YAML experiments need assignment.authoring (issue #3), which is not available yet; "
            "pass a GrowthBook payload (JSON) instead"
        ) from None
    snapshot = load_snapshot(path)
    return snapshot.payload(), list(snapshot.running_experiments())


def load_from_registry(settings: KafkaSettings, timeout: float) -> ExperimentSource:
    """The registry's running experiments and payload, read from the ``xp.registry`` topic."""
    try:
        from assignment.registry_topic import (  # type: ignore[import-not-found,unused-ignore]
            read_registry,
        )
    except ImportError:
        raise NotYetAvailableError(
            "reading the registry topic is not available yet (issue #3); pass --features FILE"
        ) from None
    snapshot = read_registry(settings, timeout)
    try:
        payload = snapshot.payload()
    except NotImplementedError:
        raise NotYetAvailableError(
            "the registry fold is not available yet (issue #3); pass --features FILE"
        ) from None
    return payload, list(snapshot.running_experiments())
