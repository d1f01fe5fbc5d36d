"""The per-unit fast path: a feature compiled into a chain of rule closures.

Without QA overrides (forced variations, URL), prerequisites or sticky bucketing, a feature is a
fixed chain of rule closures with everything known at compile time resolved: the raw condition
predicate (its error handling inlined), filters, the hash as a plain function (seed state /
suffix table), bucket ranges, per-variation results. Each closure returns its result, or calls
the next rule (the last one returns the feature's default), so one evaluation costs one Python
call per rule tried and no dispatch loop. Rules that can never apply on this path (inactive,
stopped or QA-mode experiments, 0% rollouts, unknown hash versions) are dropped, and a rule that
always applies ends the chain. Conditions, filters and hashes have no side effects, so dropping
rules changes no result; :meth:`assignment.features.FeatureEvaluator.evaluate` is the reference
(tests compare both on every differential case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from assignment.conditions import EVAL_ERRORS, Predicate
from assignment.experiments import CompiledExperiment, attribute_hash_value
from assignment.features import CompiledFeature, CompiledRule
from assignment.hashing import hash_string
from assignment.results import FeatureResult

__all__ = ["FastFeature", "compile_fast_feature"]

FastRule = Callable[[Mapping[str, Any], Any], FeatureResult]
"""``(attributes, memo) -> FeatureResult``: this rule's result, or the rest of the chain's."""
FastFeature = FastRule
"""``(attributes, memo) -> FeatureResult``; see :func:`compile_fast_feature`."""
Builder = Callable[[FastRule | None, FeatureResult], FastRule]
"""Builds a rule's closure given the next rule (None: the last) and the feature's default."""

_new_result = tuple.__new__


class _Unsupported(Exception):
    """A rule the fast path does not handle: its feature keeps the general loop."""


def _force_rule(rule: CompiledRule) -> Builder | FeatureResult | None:
    """A force rule: a builder, the result itself when it applies to every unit, None if never."""
    result = rule.force_result
    assert result is not None
    predicate = rule.predicate
    filters = list(rule.filters) if rule.filters is not None else None
    if rule.coverage is None and rule.range is None:
        if predicate is None and filters is None:
            return result  # always applies
        return lambda nxt, final: _targeted(result, predicate, filters, nxt, final)
    if rule.coverage == 0 and rule.range is None:
        return None
    hash_function = rule.hasher.function()
    if hash_function is None:
        return None
    attribute = rule.hash_attribute
    fallback = rule.fallback_attribute
    bounded = rule.range is not None
    low, high = rule.range if rule.range is not None else (0.0, 0.0)
    coverage: Any = rule.coverage

    def build(nxt: FastRule | None, final: FeatureResult) -> FastRule:
        def rollout(attributes: Mapping[str, Any], memo: Any) -> FeatureResult:
            if predicate is not None:
                try:
                    passed = predicate(attributes) is True
                except EVAL_ERRORS:
                    passed = False
                if not passed:
                    return final if nxt is None else nxt(attributes, memo)
            if filters is not None:
                for compiled_filter in filters:
                    if not compiled_filter.passes(attributes):
                        return final if nxt is None else nxt(attributes, memo)
            raw = attributes.get(attribute)
            if type(raw) is str and raw:
                value = raw
            else:
                _, raw = attribute_hash_value(attributes, attribute, fallback)
                value = hash_string(raw)
                if not value:
                    return final if nxt is None else nxt(attributes, memo)
            n = hash_function(value, memo)
            if (low <= n < high) if bounded else n < coverage:
                return result
            return final if nxt is None else nxt(attributes, memo)

        return rollout

    return build


def _targeted(
    result: FeatureResult,
    predicate: Predicate | None,
    filters: list[Any] | None,
    nxt: FastRule | None,
    final: FeatureResult,
) -> FastRule:
    """A force rule for every unit its condition and filters let through."""
    if filters is None and predicate is not None:
        condition: Predicate = predicate

        def targeted(attributes: Mapping[str, Any], memo: Any) -> FeatureResult:
            try:
                if condition(attributes) is True:
                    return result
            except EVAL_ERRORS:
                pass
            return final if nxt is None else nxt(attributes, memo)

        return targeted

    def forced(attributes: Mapping[str, Any], memo: Any) -> FeatureResult:
        passed = True
        if predicate is not None:
            try:
                passed = predicate(attributes) is True
            except EVAL_ERRORS:
                passed = False
        if passed and filters is not None:
            passed = all(compiled_filter.passes(attributes) for compiled_filter in filters)
        if passed:
            return result
        return final if nxt is None else nxt(attributes, memo)

    return forced


def _experiment_rule(rule: CompiledRule, experiment: CompiledExperiment) -> Builder | None:
    """An experiment rule: a builder, or None when it can never assign a unit on this path."""
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

    def build(nxt: FastRule | None, final: FeatureResult) -> FastRule:
        def assign(attributes: Mapping[str, Any], memo: Any) -> FeatureResult:
            if predicate is not None:
                try:
                    passed = predicate(attributes) is True
                except EVAL_ERRORS:
                    passed = False
                if not passed:
                    return final if nxt is None else nxt(attributes, memo)
            if filters is not None:
                for compiled_filter in filters:
                    if not compiled_filter.passes(attributes):
                        return final if nxt is None else nxt(attributes, memo)
            raw = attributes.get(attribute)
            hash_value = raw if type(raw) is str else hash_string(raw)
            if not hash_value:
                return final if nxt is None else nxt(attributes, memo)
            if namespace_function is not None and not (
                namespace_start <= namespace_function(hash_value, memo) < namespace_end
            ):
                return final if nxt is None else nxt(attributes, memo)
            n = hash_function(hash_value, memo)
            for start, end, value, index, variation_key, name, passthrough in choices:
                if start <= n < end:
                    if passthrough:
                        break
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
                            False,
                        ),
                    )
            return final if nxt is None else nxt(attributes, memo)

        return assign

    return build


def compile_fast_feature(feature: CompiledFeature) -> FastFeature | None:
    """``(attributes, memo) -> FeatureResult`` for ``feature`` without QA overrides, identical to
    :meth:`FeatureEvaluator.evaluate`; None when the feature needs the general loop
    (prerequisites, experiment rules with their own targeting or a forced variation). ``memo``:
    a dict shared by the features evaluated for units (value → ``fnv1a32``, see
    :meth:`SeededHash.function`), or None."""
    if feature.has_prerequisites:
        return None
    final = feature.default_result
    builders: list[Builder] = []
    try:
        for rule in feature.rules:
            step: Builder | FeatureResult | None
            if rule.force_result is not None:
                step = _force_rule(rule)
            elif rule.experiment is not None:
                step = _experiment_rule(rule, rule.experiment)
            else:
                step = None
            if step is None:
                continue
            if isinstance(step, FeatureResult):
                final = step  # applies to every unit reaching it: later rules are unreachable
                break
            builders.append(step)
    except _Unsupported:
        return None
    if not builders:
        constant = final

        def unconditional(attributes: Mapping[str, Any], memo: Any) -> FeatureResult:
            return constant

        return unconditional
    chain: FastRule | None = None
    for build in reversed(builders):
        chain = build(chain, final)
    return chain
