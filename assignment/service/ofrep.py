"""OpenFeature Remote Evaluation Protocol (OFREP) over the engine's results (pure; no HTTP here).

An OFREP request's ``context`` is the unit's attributes plus ``targetingKey``, the unit id; the
targeting key fills the hash attribute of each rule of the flag that buckets units (``hashAttribute``,
``id`` by default) unless the context names that attribute itself (:func:`unit_attributes`). A
result becomes ``{key, value, reason, variant, metadata}`` (:func:`flag_success`); the reasons:

| engine source | OFREP reason |
|---|---|
| ``experiment``, bucketed by the hash | ``SPLIT`` |
| ``experiment`` forced by a registry override | ``TARGETING_MATCH`` |
| ``force`` (a targeted or rolled-out value) | ``TARGETING_MATCH`` |
| ``defaultValue`` of a flag without rules | ``STATIC`` |
| ``defaultValue`` otherwise | ``DEFAULT`` |
| ``prerequisite`` (a failing gate) | ``DISABLED`` |

A ``null`` value is left out of the answer, so the provider returns the caller's code default
(OFREP ADR 0006). Errors are ``{key, errorCode, errorDetails}`` (:func:`flag_failure`).
Docs: docs/clients.md; decision 0058.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from assignment.results import FeatureResult

__all__ = [
    "OfrepError",
    "bulk_etag",
    "flag_failure",
    "flag_success",
    "hash_attributes_of",
    "parse_context",
    "unit_attributes",
]

PARSE_ERROR = "PARSE_ERROR"
TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
INVALID_CONTEXT = "INVALID_CONTEXT"
GENERAL = "GENERAL"
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"


class OfrepError(Exception):
    """A request OFREP answers with an error code (400, or 404 for ``FLAG_NOT_FOUND``)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def parse_context(body: Any) -> tuple[str | None, dict[str, Any]]:
    """The targeting key and the other attributes of a decoded request body.

    ``{}`` and ``{"context": {}}`` are valid (no targeting key); a body that is not an object is a
    ``PARSE_ERROR``; a ``context`` that is not an object, or a ``targetingKey`` that is not a
    non-empty string, is ``INVALID_CONTEXT``."""
    if not isinstance(body, dict):
        raise OfrepError(PARSE_ERROR, 'the body must be a JSON object {"context": {...}}')
    context = body.get("context", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise OfrepError(INVALID_CONTEXT, "context must be a JSON object")
    attributes = dict(context)
    targeting_key = attributes.pop("targetingKey", None)
    if targeting_key is not None and (not isinstance(targeting_key, str) or not targeting_key):
        raise OfrepError(INVALID_CONTEXT, "targetingKey must be a non-empty string")
    return targeting_key, attributes


def hash_attributes_of(feature: Mapping[str, Any]) -> set[str]:
    """The attributes the rules of one payload feature bucket units by (empty: nothing is bucketed)."""
    names: set[str] = set()
    for rule in feature.get("rules") or ():
        if not isinstance(rule, Mapping):
            continue
        buckets = (
            "variations" in rule
            or rule.get("coverage") is not None
            or rule.get("range") is not None
            or bool(rule.get("filters"))
        )
        if buckets:
            names.add(str(rule.get("hashAttribute") or "id"))
    return names


def unit_attributes(
    targeting_key: str | None, attributes: Mapping[str, Any], hash_attributes: Iterable[str]
) -> dict[str, Any]:
    """The attributes to evaluate with: the context's, plus the targeting key as each hash attribute
    the context does not set itself."""
    unit = dict(attributes)
    if targeting_key is not None:
        for name in hash_attributes:
            unit.setdefault(name, targeting_key)
    return unit


def _reason(result: FeatureResult, overridden: bool, has_rules: bool) -> str:
    source = result.source
    if source == "experiment":
        return "TARGETING_MATCH" if overridden or not result.hash_used else "SPLIT"
    if source == "force":
        return "TARGETING_MATCH"
    if source == "prerequisite":
        return "DISABLED"
    return "DEFAULT" if has_rules else "STATIC"


def _variant(result: FeatureResult) -> str:
    if result.source == "experiment":
        if result.variation_key:
            return str(result.variation_key)
        return str(result.variation_id)
    if result.source == "force":
        return result.rule_id or "forced"
    return "default"


def flag_success(
    key: str, result: FeatureResult, *, overridden: bool, has_rules: bool, payload_version: int
) -> dict[str, Any]:
    """The OFREP evaluation success object of one flag."""
    metadata: dict[str, Any] = {"source": result.source, "payload_version": payload_version}
    if result.rule_id:
        metadata["rule_id"] = result.rule_id
    if result.source == "experiment" and result.experiment_key:
        metadata["experiment_key"] = result.experiment_key
        metadata["in_experiment"] = result.in_experiment
        if result.variation_id is not None:
            metadata["variation_id"] = result.variation_id
        if result.hash_attribute:
            metadata["hash_attribute"] = result.hash_attribute
        metadata["overridden"] = overridden
    answer: dict[str, Any] = {
        "key": key,
        "reason": _reason(result, overridden, has_rules),
        "variant": _variant(result),
        "metadata": metadata,
    }
    if result.value is not None:
        answer["value"] = result.value
    return answer


def flag_failure(key: str | None, code: str, details: str) -> dict[str, Any]:
    """The OFREP evaluation failure object (``key`` omitted for a bulk request's own failure)."""
    answer: dict[str, Any] = {"errorCode": code, "errorDetails": details}
    if key is not None:
        answer = {"key": key, **answer}
    return answer


def bulk_etag(body: bytes) -> str:
    """The ETag of a bulk answer: a hash of its bytes (the same flags for the same context and
    payload give the same tag, whatever changed elsewhere)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
