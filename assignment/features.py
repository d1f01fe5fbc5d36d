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
from typing import Any

from assignment.conditions import (
    EVAL_ERRORS,
    Predicate,
    as_condition,
    compile_condition,
    compile_predicate,
    condition_attributes,
)
from assignment.experiments import CompiledExperiment, CompiledFilter, attribute_hash_value
from assignment.hashing import SeededHash, hash_string
from assignment.results import FeatureResult

__all__ = [
    "CompiledFeature",
    "CompiledRule",
    "FastFeature",
    "FeatureEvaluator",
    "ParentCondition",
    "compile_fast_feature",
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
    )


# -- the fast path ------------------------------------------------------------------------------
#
# Without QA overrides (forced variations, URL) and prerequisites, a feature is a fixed list of
# rule closures with everything known at compile time resolved: the raw condition predicate, the
# hash as a plain function (seed state / suffix table), ranges, variation results. Rules that can
# never apply on this path (inactive, stopped or QA-mode experiments, 0% rollouts, unknown hash
# versions) are dropped, and a rule that always applies ends the list. Conditions, filters and
# hashes have no side effects, so dropping rules changes no result.

FastRule = Callable[[Mapping[str, Any], "dict[str, int] | None"], FeatureResult | None]
FastFeature = Callable[..., FeatureResult]  # (attributes, memo=None); see compile_fast_feature

_new_result = tuple.__new__


class _Unsupported(Exception):
    """A rule the fast path does not handle: its feature keeps the general loop."""


def _guarded(
    predicate: Predicate | None, filters: Sequence[CompiledFilter] | None
) -> Callable[[Mapping[str, Any]], Any] | None:
    """The condition and filters of a rule as one check (None when the rule has neither)."""
    if predicate is None and filters is None:
        return None
    if filters is None:
        assert predicate is not None
        only: Predicate = predicate

        def condition_only(attributes: Mapping[str, Any]) -> Any:
            try:
                return only(attributes) is True
            except EVAL_ERRORS:
                return False

        return condition_only

    checks = list(filters)

    def guard(attributes: Mapping[str, Any]) -> Any:
        if predicate is not None:
            try:
                if predicate(attributes) is not True:
                    return False
            except EVAL_ERRORS:
                return False
        return all(compiled_filter.passes(attributes) for compiled_filter in checks)

    return guard


def _fast_force_rule(rule: CompiledRule) -> FastRule | FeatureResult | None:
    result = rule.force_result
    assert result is not None
    predicate = rule.predicate
    guard = _guarded(predicate, rule.filters)
    if rule.coverage is None and rule.range is None:
        if guard is None:
            return result  # always applies
        if rule.filters is None and predicate is not None:
            condition: Predicate = predicate

            def targeted(attributes: Mapping[str, Any], memo: dict[str, int] | None) -> FeatureResult | None:
                try:
                    return result if condition(attributes) is True else None
                except EVAL_ERRORS:
                    return None

            return targeted
        check = guard

        def forced(attributes: Mapping[str, Any], memo: dict[str, int] | None) -> FeatureResult | None:
            return result if check(attributes) else None

        return forced
    if rule.coverage == 0 and rule.range is None:
        return None
    hash_function = rule.hasher.function()
    if hash_function is None:
        return None
    filters = list(rule.filters) if rule.filters is not None else None
    attribute = rule.hash_attribute
    fallback = rule.fallback_attribute
    bounded = rule.range is not None
    low, high = rule.range if rule.range is not None else (0.0, 0.0)
    coverage: Any = rule.coverage

    def rollout(attributes: Mapping[str, Any], memo: dict[str, int] | None) -> FeatureResult | None:
        if predicate is not None:
            try:
                if predicate(attributes) is not True:
                    return None
            except EVAL_ERRORS:
                return None
        if filters is not None:
            for compiled_filter in filters:
                if not compiled_filter.passes(attributes):
                    return None
        raw = attributes.get(attribute)
        if type(raw) is str and raw:
            value = raw
        else:
            _, raw = attribute_hash_value(attributes, attribute, fallback)
            value = hash_string(raw)
            if not value:
                return None
        n = hash_function(value, memo)
        if bounded:
            return result if low <= n < high else None
        return result if n < coverage else None

    return rollout


def _fast_experiment_rule(rule: CompiledRule, experiment: CompiledExperiment) -> FastRule | None:
    if experiment.force is not None:
        raise _Unsupported("an experiment rule with a forced variation")
    if experiment.skip or not experiment.active or experiment.qa_mode or experiment.stopped:
        return None
    if experiment.filters is not None or experiment.condition is not None or experiment.prerequisites:
        raise _Unsupported("an experiment rule with its own targeting")
    hash_function = experiment.hasher.function()
    if hash_function is None:
        return None
    namespace_function = (
        experiment.namespace_hasher.function() if experiment.namespace_hasher is not None else None
    )
    namespace_start, namespace_end = experiment.namespace_range
    predicate = rule.predicate
    filters = list(rule.filters) if rule.filters is not None else None
    attribute = experiment.hash_attribute
    rule_id = rule.id
    key = experiment.key
    # (start, end, value, index, variation key, name, passthrough) per range, in order
    choices = [
        (start, end, experiment.variations[index], index, *experiment.variation_meta[index])
        for index, (start, end) in enumerate(experiment.ranges)
        if index < experiment.num_variations
    ]
    if len(choices) < len(experiment.ranges):
        raise _Unsupported("more ranges than variations")

    def assign(attributes: Mapping[str, Any], memo: dict[str, int] | None) -> FeatureResult | None:
        if predicate is not None:
            try:
                if predicate(attributes) is not True:
                    return None
            except EVAL_ERRORS:
                return None
        if filters is not None:
            for compiled_filter in filters:
                if not compiled_filter.passes(attributes):
                    return None
        raw = attributes.get(attribute)
        hash_value = raw if type(raw) is str else hash_string(raw)
        if not hash_value:
            return None
        if namespace_function is not None:
            n_namespace = namespace_function(hash_value, memo)
            if not namespace_start <= n_namespace < namespace_end:
                return None
        n = hash_function(hash_value, memo)
        for start, end, value, index, variation_key, name, passthrough in choices:
            if start <= n < end:
                if passthrough:
                    return None
                return _new_result(  # FeatureResult(...) without its Python-level __new__
                    FeatureResult,
                    (
                        value,
                        "experiment",
                        rule_id,
                        key,
                        True,
                        index,
                        True,
                        attribute,
                        raw,
                        n,
                        variation_key,
                        name,
                    ),
                )
        return None

    return assign


def compile_fast_feature(feature: CompiledFeature) -> FastFeature | None:
    """``(attributes, memo=None) -> FeatureResult`` for ``feature`` without QA overrides, identical
    to :meth:`FeatureEvaluator.evaluate`; None when the feature needs the general loop
    (prerequisites). ``memo``: a dict shared by the features evaluated for one unit (value →
    ``fnv1a32``, see :meth:`SeededHash.function`), or None."""
    if feature.has_prerequisites:
        return None
    default = feature.default_result
    steps: list[FastRule] = []
    try:
        for rule in feature.rules:
            step: FastRule | FeatureResult | None
            if rule.force_result is not None:
                step = _fast_force_rule(rule)
            elif rule.experiment is not None:
                step = _fast_experiment_rule(rule, rule.experiment)
            else:
                step = None
            if step is None:
                continue
            if isinstance(step, FeatureResult):
                default = step  # applies to every unit reaching it: later rules are unreachable
                break
            steps.append(step)
    except _Unsupported:
        return None
    final = default
    if not steps:

        def constant(attributes: Mapping[str, Any], memo: dict[str, int] | None = None) -> FeatureResult:
            return final

        return constant
    if len(steps) == 1:
        only = steps[0]

        def one_rule(attributes: Mapping[str, Any], memo: dict[str, int] | None = None) -> FeatureResult:
            result = only(attributes, memo)
            return final if result is None else result

        return one_rule
    if len(steps) == 2:
        first, second = steps

        def two_rules(attributes: Mapping[str, Any], memo: dict[str, int] | None = None) -> FeatureResult:
            result = first(attributes, memo)
            if result is not None:
                return result
            result = second(attributes, memo)
            return final if result is None else result

        return two_rules
    rules = tuple(steps)

    def any_rules(attributes: Mapping[str, Any], memo: dict[str, int] | None = None) -> FeatureResult:
        for step in rules:
            result = step(attributes, memo)
            if result is not None:
                return result
        return final

    return any_rules


class FeatureEvaluator:
    """Evaluates the features of one compiled payload for one unit at a time."""

    def __init__(self, features: Mapping[str, CompiledFeature]) -> None:
        self.features = features
        self.fast: dict[str, FastFeature] = {}
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
    ) -> FeatureResult:
        """Feature ``key`` for one unit. ``stack`` holds the features being evaluated (cycles)."""
        if not forced_variations and not url and not (stack and key in stack):
            fast = self.fast.get(key)
            if fast is not None:
                return fast(attributes)
        feature = self.features.get(key)
        if feature is None:
            return UNKNOWN_FEATURE
        if stack and key in stack:
            return CYCLIC_PREREQUISITE
        inner_stack = (*stack, key) if feature.has_prerequisites else stack
        for rule in feature.rules:
            if rule.parents is not None:
                outcome = self.check_prerequisites(
                    rule.parents, attributes, forced_variations, url, inner_stack
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
            result = experiment.run(attributes, forced_variations, url)
            if result is None or result.passthrough:
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
    ) -> str:
        """``pass``, ``fail``, ``gate`` (a failing gate) or ``cyclic``."""
        for parent in parents:
            if parent.feature_key is None:
                continue
            parent_result = self.evaluate(parent.feature_key, attributes, forced_variations, url, stack)
            if parent_result.source == "cyclicPrerequisite":
                return "cyclic"
            if parent.condition is None:
                continue
            if not parent.condition({"value": parent_result.value}):
                return "gate" if parent.gate else "fail"
        return "pass"
