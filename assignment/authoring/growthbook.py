"""A GrowthBook SDK payload (``{"features": …, "savedGroups": …}``) → registry entries, taken as is (pure).

One feature entry per feature and one running experiment entry per experiment rule; the payload is
checked by :func:`assignment.compiled.validate_payload` (the engine's own rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticCustomError

from assignment.authoring.authored import AuthoredRegistry, Where, with_saved_groups
from assignment.authoring.values import KEY_PROBLEM, is_key, json_ready
from schemas import ExperimentDefinition, ExperimentStatus, FeatureDefinition, FeatureStatus
from xpcore.errors import ValidationError

__all__ = ["parse_growthbook_payload"]


def _json_definition(spec: Any, where: Where) -> Any:
    try:
        return json_ready(spec)
    except PydanticCustomError as error:
        context = error.context or {}
        raise where.error(f"definition{context.get('at', '')}", str(context.get("problem"))) from None


def parse_growthbook_payload(document: Mapping[str, Any], source: str) -> AuthoredRegistry:
    """A GrowthBook payload document → entries; ``source`` names the file in error messages."""
    from assignment.compiled import validate_payload

    try:
        validate_payload(dict(document))
    except ValidationError as error:
        raise ValidationError(f"{source}: {error}") from None
    groups = document.get("savedGroups") or {}
    experiments: dict[str, ExperimentDefinition] = {}
    features: list[FeatureDefinition] = []
    for feature_key, spec in (document.get("features") or {}).items():
        where = Where(source, f"feature {feature_key!r}")
        if not is_key(feature_key):
            raise Where(source, "features").error(str(feature_key), KEY_PROBLEM)
        definition = _json_definition(spec, where)
        for index, rule in enumerate(definition.get("rules") or []):
            if not isinstance(rule.get("variations"), list):
                continue
            key = str(rule.get("key") or feature_key)
            if not is_key(key):
                raise where.error(f"rules[{index}].key", KEY_PROBLEM)
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
        full = with_saved_groups(definition, groups, where)
        features.append(
            FeatureDefinition(key=feature_key, version=1, status=FeatureStatus.ACTIVE, definition=full)
        )
    return AuthoredRegistry(source, tuple(experiments.values()), tuple(features))
