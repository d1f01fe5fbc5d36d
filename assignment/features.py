"""Features compiled from a GrowthBook payload, and GrowthBook's feature evaluation loop.

For one unit, the rules of a feature are tried in order:

1. prerequisites (``parentConditions``): each parent feature is evaluated and its value must
   match the condition; a failing ``gate`` ends the feature (source ``prerequisite``), a cycle
   ends it (``cyclicPrerequisite``), any other failure skips the rule
2. ``condition`` must match, ``filters`` must include the unit
3. a ``force`` rule returns its value when the unit is in the rollout (``coverage`` or ``range``
   of the hash under ``seed``, defaulting to the feature key; the fallback attribute applies)
4. an experiment rule returns the unit's variation when it is in the experiment and the variation
   is not a ``passthrough`` (holdouts); otherwise the next rule is tried

and the feature's ``defaultValue`` is returned when no rule applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from assignment.conditions import (
    Predicate,
    as_condition,
    compile_condition,
    compile_predicate,
    condition_attributes,
)
from assignment.experiments import CompiledExperiment, CompiledFilter, attribute_hash_value
from assignment.hashing import SeededHash, hash_string
from assignment.results import FeatureResult

if TYPE_CHECKING:
    from assignment.sticky import StickyBuckets

__all__ = [
    "CompiledFeature",
    "CompiledRule",
    "FeatureEvaluator",
    "ParentCondition",
]

UNKNOWN_FEATURE = FeatureResult(None, "unknownFeature")
CYCLIC_PREREQUISITE = FeatureResult(None, "cyclicPrerequisite")
PREREQUISITE_GATE = FeatureResult(None, "prerequisite")


class ParentCondition:
    """One prerequisite: parent feature ``id``'s value must match ``condition``."""

    __slots__ = ("condition", "feature_key", "gate")

    def __init__(self, spec: Mapping[str, Any], saved_groups: Mapping[str, Any]) -> None:
        self.feature_key: str | None = spec.get("id")
        condition = spec.get("condition")
        self.condition = compile_condition(condition, saved_groups) if condition is not None else None
        self.gate = bool(spec.get("gate", False))


class CompiledRule:
    """One rule of a feature (force/rollout or experiment)."""

    __slots__ = (
        "condition",
        "condition_attributes",
        "coverage",
        "experiment",
        "fallback_attribute",
        "filters",
        "force_result",
        "hash_attribute",
        "hasher",
        "id",
        "parents",
        "predicate",
        "range",
    )

    def __init__(
        self,
        spec: Mapping[str, Any],
        feature_key: str,
        saved_groups: Mapping[str, Any],
        enabled: bool,
        qa_mode: bool,
    ) -> None:
        self.id: str = spec.get("id") or ""
        parents = spec.get("parentConditions")
        self.parents: list[ParentCondition] | None = (
            [ParentCondition(p, saved_groups) for p in parents] if parents else None
        )
        condition = spec.get("condition")
        self.predicate: Predicate | None = compile_predicate(condition, saved_groups) if condition else None
        self.condition: Callable[[Any], bool] | None = (
            as_condition(self.predicate) if self.predicate is not None else None
        )
        self.condition_attributes: tuple[str, ...] | None = None
        if condition:
            names = condition_attributes(condition, saved_groups)
            self.condition_attributes = tuple(sorted(names)) if names is not None else None
        filters = spec.get("filters")
        self.filters: list[CompiledFilter] | None = [CompiledFilter(f) for f in filters] if filters else None
        hash_attribute = spec.get("hashAttribute", "id")
        self.hash_attribute: str = hash_attribute if hash_attribute is not None else "id"
        self.fallback_attribute: str | None = (
            None if spec.get("disableStickyBucketing") else spec.get("fallbackAttribute")
        )
        self.coverage: float | None = spec.get("coverage")
        bucket_range = spec.get("range")
        self.range: tuple[float, float] | None = (bucket_range[0], bucket_range[1]) if bucket_range else None
        self.hasher = SeededHash(str(spec.get("seed") or feature_key), spec.get("hashVersion") or 1)
        force = spec.get("force")
        self.force_result: FeatureResult | None = (
            FeatureResult(force, "force", self.id) if force is not None else None
        )
        self.experiment: CompiledExperiment | None = None
        variations = spec.get("variations")
        if self.force_result is None and variations is not None:
            self.experiment = CompiledExperiment(
                spec,
                key=spec.get("key") or feature_key,
                feature_key=feature_key,
                check_filters=False,
                condition=None,
                prerequisites=None,
                enabled=enabled,
                qa_mode=qa_mode,
            )

    @property
    def always_in_rollout(self) -> bool:
        """A force rule without coverage or range applies to every unit reaching it."""
        return self.coverage is None and self.range is None

    def in_rollout(self, attributes: Mapping[str, Any]) -> bool:
        """GrowthBook's ``isIncludedInRollout`` for this force rule."""
        if self.coverage is None and self.range is None:
            return True
        if self.coverage == 0 and self.range is None:
            return False
        _, raw = attribute_hash_value(attributes, self.hash_attribute, self.fallback_attribute)
        value = hash_string(raw)
        if not value:
            return False
        n = self.hasher(value)
        if n is None:
            return False
        if self.range is not None:
            return self.range[0] <= n < self.range[1]
        return n < self.coverage if self.coverage is not None else True


class CompiledFeature:
    """A feature: its default value (as a ready result) and its compiled rules."""

    __slots__ = ("default_result", "has_prerequisites", "key", "rules")

    def __init__(self, key: str, rules: Sequence[CompiledRule], default_value: Any) -> None:
        self.key = key
        self.rules = list(rules)
        self.default_result = FeatureResult(default_value, "defaultValue")
        self.has_prerequisites = any(rule.parents for rule in self.rules)


def experiment_feature_result(rule: CompiledRule, result: Any) -> FeatureResult:
    """The feature result of a unit in an experiment rule."""
    return FeatureResult(
        result.value,
        "experiment",
        rule.id,
        result.experiment_key,
        True,
        result.variation_id,
        result.hash_used,
        result.hash_attribute,
        result.hash_value,
        result.bucket,
        result.variation_key,
        result.variation_name,
        result.sticky_bucket_used,
    )


class FeatureEvaluator:
    """Evaluates the features of one compiled payload for one unit at a time."""

    def __init__(self, features: Mapping[str, CompiledFeature]) -> None:
        from assignment.fast_path import compile_fast_feature  # it builds on this module

        self.features = features
        self.fast: dict[str, Callable[[Mapping[str, Any], Any], FeatureResult]] = {}
        for key, feature in features.items():
            fast = compile_fast_feature(feature)
            if fast is not None:
                self.fast[key] = fast

    def evaluate(
        self,
        key: str,
        attributes: Mapping[str, Any],
        forced_variations: Mapping[str, Any] | None = None,
        url: str | None = None,
        stack: tuple[str, ...] = (),
        sticky: StickyBuckets | None = None,
    ) -> FeatureResult:
        """Feature ``key`` for one unit. ``stack`` holds the features being evaluated (cycles);
        ``sticky``: the unit's sticky bucket documents (sticky bucketing off when None)."""
        if not forced_variations and not url and sticky is None and not (stack and key in stack):
            fast = self.fast.get(key)
            if fast is not None:
                return fast(attributes, None)
        feature = self.features.get(key)
        if feature is None:
            return UNKNOWN_FEATURE
        if stack and key in stack:
            return CYCLIC_PREREQUISITE
        inner_stack = (*stack, key) if feature.has_prerequisites else stack
        for rule in feature.rules:
            if rule.parents is not None:
                outcome = self.check_prerequisites(
                    rule.parents, attributes, forced_variations, url, inner_stack, sticky
                )
                if outcome == "gate":
                    return PREREQUISITE_GATE
                if outcome == "cyclic":
                    return CYCLIC_PREREQUISITE
                if outcome == "fail":
                    continue
            if rule.condition is not None and not rule.condition(attributes):
                continue
            if rule.filters is not None and not all(f.passes(attributes) for f in rule.filters):
                continue
            if rule.force_result is not None:
                if rule.in_rollout(attributes):
                    return rule.force_result
                continue
            experiment = rule.experiment
            if experiment is None:
                continue
            result = experiment.run(attributes, forced_variations, url, sticky=sticky)
            if result is None or not result.in_experiment or result.passthrough:
                continue
            return experiment_feature_result(rule, result)
        return feature.default_result

    def check_prerequisites(
        self,
        parents: Sequence[ParentCondition],
        attributes: Mapping[str, Any],
        forced_variations: Mapping[str, Any] | None,
        url: str | None,
        stack: tuple[str, ...],
        sticky: StickyBuckets | None = None,
    ) -> str:
        """``pass``, ``fail``, ``gate`` (a failing gate) or ``cyclic``."""
        for parent in parents:
            if parent.feature_key is None:
                continue
            parent_result = self.evaluate(
                parent.feature_key, attributes, forced_variations, url, stack, sticky
            )
            if parent_result.source == "cyclicPrerequisite":
                return "cyclic"
            if parent.condition is None:
                continue
            if not parent.condition({"value": parent_result.value}):
                return "gate" if parent.gate else "fail"
        return "pass"
