"""GrowthBook remote evaluation (``POST /api/eval/{client_key}``): the request body and the evaluated
payload SDKs load instead of the rules (pure; no HTTP here).

The SDKs send ``{"attributes", "forcedVariations", "forcedFeatures", "url"}`` and load the answer as
a features payload: every feature becomes ``{"defaultValue": <the unit's value>}``, and a feature
the unit gets from an experiment also carries one rule ``{"force": value, "tracks": [{experiment,
result}]}``, so the SDK fires its tracking callback when the feature is used, as GrowthBook's own
remote evaluation does. The unit's rules, conditions and saved groups never leave the service.
Docs: docs/clients.md; decision 0059.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assignment.results import FeatureResult

__all__ = ["RemoteEvalError", "RemoteEvalRequest", "evaluated_payload", "parse_remote_eval"]


@dataclass(frozen=True)
class RemoteEvalRequest:
    """A validated remote-evaluation body."""

    attributes: dict[str, Any]
    forced_variations: dict[str, int] = field(default_factory=dict)
    forced_features: dict[str, Any] = field(default_factory=dict)
    url: str | None = None


class RemoteEvalError(ValueError):
    """The body is not a remote-evaluation request (one line, answered 422)."""


def _forced_features(value: Any) -> dict[str, Any]:
    """``[[key, value], ...]`` (the SDKs' ``Array.from(map.entries())``) or ``{key: value}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for entry in value:
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
                raise RemoteEvalError("forcedFeatures must be [[featureKey, value], ...]")
            pairs.append((entry[0], entry[1]))
    else:
        raise RemoteEvalError("forcedFeatures must be [[featureKey, value], ...]")
    return dict(pairs)


def parse_remote_eval(body: Any) -> RemoteEvalRequest:
    """Validate a decoded body (RemoteEvalError names the field at fault)."""
    if not isinstance(body, dict):
        raise RemoteEvalError('the body must be a JSON object {"attributes": {...}, ...}')
    attributes = body.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise RemoteEvalError("attributes must be a JSON object")
    forced_variations = body.get("forcedVariations") or {}
    if not isinstance(forced_variations, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in forced_variations.items()
    ):
        raise RemoteEvalError("forcedVariations must map experiment keys to variation indexes (integers ≥ 0)")
    url = body.get("url")
    if url is not None and not isinstance(url, str):
        raise RemoteEvalError("url must be a string")
    return RemoteEvalRequest(
        attributes=attributes,
        forced_variations=dict(forced_variations),
        forced_features=_forced_features(body.get("forcedFeatures")),
        url=url or None,
    )


_EXPERIMENT_FIELDS = ("variations", "weights", "meta", "name", "phase", "seed", "hashVersion", "coverage")


def _experiment(feature: Any, result: FeatureResult) -> dict[str, Any]:
    """The experiment a tracking callback receives: the rule's key, variations and meta (SDKs need
    ``variations``), never its condition or targeting."""
    experiment: dict[str, Any] = {
        "key": result.experiment_key,
        "hashAttribute": result.hash_attribute or "id",
    }
    rules = feature.get("rules") if isinstance(feature, Mapping) else None
    for rule in rules or ():
        if (
            isinstance(rule, Mapping)
            and "variations" in rule
            and (rule.get("key") or None)
            in (
                result.experiment_key,
                None,
            )
        ):
            experiment.update({name: rule[name] for name in _EXPERIMENT_FIELDS if name in rule})
            break
    return experiment


def _track(feature_key: str, feature: Any, result: FeatureResult) -> dict[str, Any]:
    """GrowthBook's ``{experiment, result}`` pair of one in-experiment assignment."""
    variation_key = result.variation_key or str(result.variation_id)
    return {
        "experiment": _experiment(feature, result),
        "result": {
            "featureId": feature_key,
            "key": variation_key,
            "name": result.variation_name or "",
            "value": result.value,
            "variationId": result.variation_id,
            "inExperiment": True,
            "hashUsed": result.hash_used,
            "hashAttribute": result.hash_attribute or "id",
            "hashValue": result.hash_value,
            "bucket": result.bucket,
            "stickyBucketUsed": result.sticky_bucket_used,
        },
    }


def evaluated_payload(
    results: Mapping[str, FeatureResult],
    forced_features: Mapping[str, Any],
    date_updated: str,
    features_spec: Mapping[str, Any],
) -> dict[str, Any]:
    """The payload SDKs load: each feature reduced to the unit's value (``forcedFeatures`` win);
    ``features_spec``: the served payload's features (for the experiments' variations)."""
    features: dict[str, Any] = {}
    for key, result in results.items():
        if key in forced_features:
            features[key] = {"defaultValue": forced_features[key]}
            continue
        feature: dict[str, Any] = {"defaultValue": result.value}
        if result.source == "experiment" and result.in_experiment and result.experiment_key:
            track = _track(key, features_spec.get(key), result)
            feature["rules"] = [{"force": result.value, "tracks": [track]}]
        features[key] = feature
    return {"status": 200, "features": features, "experiments": [], "dateUpdated": date_updated}
