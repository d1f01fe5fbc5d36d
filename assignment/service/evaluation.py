"""Assignments for the HTTP API: overrides from the registry applied and marked (pure; no HTTP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from assignment.hashing import hash_string
from assignment.results import FeatureResult
from assignment.service.sources import ServingState
from assignment.sticky import StickyBuckets

__all__ = ["assign_many", "assign_unit", "assignment_dict", "forced_variations_for"]

_BULK_MIN_UNITS = 32


def forced_variations_for(state: ServingState, attributes: Mapping[str, Any], at: datetime) -> dict[str, int]:
    """Experiment key → variation forced by a live registry override for this unit (often empty).

    An override applies when the unit's value of the experiment's hash attribute is the override's
    unit id and the override has not expired at ``at``."""
    if not state.override_units or state.snapshot is None:
        return {}
    forced: dict[str, int] = {}
    for name, value in attributes.items():
        if isinstance(value, dict | list):
            continue
        unit_id = hash_string(value)
        experiments = state.override_units.get(unit_id) if unit_id else None
        if not experiments:
            continue
        for experiment_key in experiments:
            if state.hash_attributes.get(experiment_key, "id") != name:
                continue
            override = state.snapshot.override_for(experiment_key, unit_id, at)
            if override is None:
                continue
            count = state.variation_counts.get(experiment_key)
            if count is not None and override.variation_id >= count:
                continue  # points at a variation the current definition does not have
            forced[experiment_key] = override.variation_id
    return forced


def _is_overridden(result: FeatureResult, forced: Mapping[str, int]) -> bool:
    key = result.experiment_key
    return bool(
        key is not None
        and result.in_experiment
        and not result.hash_used
        and forced.get(key) == result.variation_id
    )


def assign_unit(
    state: ServingState,
    attributes: Mapping[str, Any],
    features: Sequence[str] | None,
    at: datetime,
    sticky: StickyBuckets | None = None,
    *,
    client_forced: Mapping[str, int] | None = None,
    url: str | None = None,
) -> dict[str, tuple[FeatureResult, bool]]:
    """Feature key → (result, overridden) for one unit; ``sticky``: its sticky bucket documents
    (read and updated), or None for purely hash-based assignment. ``client_forced`` and ``url``:
    GrowthBook's QA overrides sent by an SDK (remote evaluation); a registry override wins over
    them, and only a registry override marks the assignment ``overridden``."""
    compiled = state.compiled
    keys = compiled.features if features is None else features
    forced = forced_variations_for(state, attributes, at)
    evaluate = compiled.evaluate
    if not forced and sticky is None and not client_forced and not url:
        return {key: (evaluate(key, attributes), False) for key in keys}
    all_forced = {**client_forced, **forced} if client_forced else forced
    out: dict[str, tuple[FeatureResult, bool]] = {}
    for key in keys:
        result = evaluate(
            key, attributes, forced_variations=all_forced or None, url=url, sticky_buckets=sticky
        )
        out[key] = (result, _is_overridden(result, forced))
    return out


def assign_many(
    state: ServingState, units: Sequence[Mapping[str, Any]], features: Sequence[str] | None, at: datetime
) -> list[dict[str, tuple[FeatureResult, bool]]]:
    """Per unit, feature key → (result, overridden); the bulk engine for units without overrides."""
    if len(units) < _BULK_MIN_UNITS:
        return [assign_unit(state, unit, features, at) for unit in units]
    compiled = state.compiled
    keys = list(compiled.features if features is None else features)
    forced_by_unit = [forced_variations_for(state, unit, at) for unit in units]
    out: list[dict[str, tuple[FeatureResult, bool]]] = [{} for _ in units]
    for key in keys:
        if key in compiled.features:
            column = compiled.evaluate_many(key, units)
        else:
            column = [compiled.evaluate(key, units[0])] * len(units)  # unknownFeature for everyone
        for index, result in enumerate(column):
            out[index][key] = (result, False)
    for index, forced in enumerate(forced_by_unit):
        if forced:
            out[index] = assign_unit(state, units[index], keys, at)
    return out


def assignment_dict(result: FeatureResult, overridden: bool) -> dict[str, Any]:
    """The JSON object of one assignment (the Assignment model's fields)."""
    data = result.to_dict()
    data["overridden"] = overridden
    return data
