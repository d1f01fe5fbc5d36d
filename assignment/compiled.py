"""Compile a GrowthBook SDK payload once, then evaluate many units fast.

::

    from assignment import compile_payload

    payload = compile_payload({"features": {...}, "savedGroups": {...}})
    result = payload.evaluate("checkout", {"id": "u1", "country": "US"})
    result.value, result.source, result.in_experiment, result.variation_id
    results = payload.evaluate_many("checkout", [{"id": "u1"}, {"id": "u2"}])  # bulk, vectorized

The payload is GrowthBook's public SDK format (``GET /api/features/{client_key}``): ``features``
(``defaultValue`` and ``rules``) and ``savedGroups``. Rules and conditions are compiled into
closures; hashes with a fixed seed keep their seed's FNV state. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assignment.conditions import compile_condition
from assignment.experiments import CompiledExperiment
from assignment.features import CompiledFeature, CompiledRule, FeatureEvaluator, ParentCondition
from assignment.results import ExperimentResult, FeatureResult
from assignment.sticky import StickyBuckets, StickyBucketService
from xpcore.errors import ValidationError

__all__ = ["CompiledPayload", "compile_payload", "validate_payload"]


def validate_payload(payload: Any) -> None:
    """Raise :class:`~xpcore.errors.ValidationError` naming the first structural problem."""
    if not isinstance(payload, dict):
        raise ValidationError("payload must be a JSON object with a 'features' object")
    features = payload.get("features", {})
    if not isinstance(features, dict):
        raise ValidationError("payload 'features' must be an object of feature key → definition")
    saved_groups = payload.get("savedGroups", {})
    if saved_groups is not None and not isinstance(saved_groups, dict):
        raise ValidationError("payload 'savedGroups' must be an object")
    for key, feature in features.items():
        if not isinstance(feature, dict):
            raise ValidationError(f"feature {key!r}: definition must be an object")
        rules = feature.get("rules", [])
        if rules is None:
            continue
        if not isinstance(rules, list):
            raise ValidationError(f"feature {key!r}: 'rules' must be a list")
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict):
                raise ValidationError(f"feature {key!r} rule {index}: must be an object")
            _validate_rule(key, index, rule)


def _validate_rule(key: str, index: int, rule: Mapping[str, Any]) -> None:
    where = f"feature {key!r} rule {index}"
    for field in ("variations", "weights", "filters", "parentConditions", "meta", "ranges"):
        if rule.get(field) is not None and not isinstance(rule[field], list):
            raise ValidationError(f"{where}: {field!r} must be a list")
    for field in ("coverage",):
        value = rule.get(field)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise ValidationError(f"{where}: {field!r} must be a number")
    namespace = rule.get("namespace")
    if namespace is not None and not (isinstance(namespace, list) and len(namespace) == 3):
        raise ValidationError(f"{where}: 'namespace' must be [id, start, end]")
    for field in ("range",):
        value = rule.get(field)
        if value is not None and not (isinstance(value, list) and len(value) == 2):
            raise ValidationError(f"{where}: {field!r} must be [start, end]")
    for bucket_range in rule.get("ranges") or []:
        if not (isinstance(bucket_range, list) and len(bucket_range) == 2):
            raise ValidationError(f"{where}: 'ranges' entries must be [start, end]")
    for entry in rule.get("filters") or []:
        if not isinstance(entry, dict):
            raise ValidationError(f"{where}: 'filters' entries must be objects")


class CompiledPayload:
    """A GrowthBook payload compiled for evaluation; immutable and safe to share between threads."""

    def __init__(self, payload: Mapping[str, Any], *, qa_mode: bool = False, enabled: bool = True) -> None:
        validate_payload(payload)
        self.qa_mode = qa_mode
        self.enabled = enabled
        self.saved_groups: Mapping[str, Any] = payload.get("savedGroups") or {}
        self.features: dict[str, CompiledFeature] = {}
        for key, spec in (payload.get("features") or {}).items():
            rules = [
                CompiledRule(rule, key, self.saved_groups, enabled, qa_mode)
                for rule in spec.get("rules") or []
            ]
            self.features[key] = CompiledFeature(key, rules, spec.get("defaultValue"))
        self._evaluator = FeatureEvaluator(self.features)
        # Features without prerequisites as one chain of closures each (see assignment.fast_path).
        self._fast = self._evaluator.fast
        self._all = [(key, self._fast.get(key)) for key in self.features]
        # value → fnv1a32(value), shared by the v1 hashes (rollouts, namespaces, v1 experiments)
        # of every feature evaluated one at a time, so that a unit's id is hashed once whatever
        # the number of features asked for it; bounded (hashing.MEMO_LIMIT). Dict operations
        # are atomic and an entry never changes, so threads may share it.
        self._memo: dict[str, int] = {}
        names: dict[str, None] = {}  # the attributes sticky bucket documents are kept for, in order
        for feature in self.features.values():
            for rule in feature.rules:
                experiment = rule.experiment
                if experiment is not None:  # GrowthBook's list, disableStickyBucketing or not
                    names[experiment.hash_attribute] = None
                    if experiment.fallback_attribute:
                        names[experiment.fallback_attribute] = None
        self.sticky_bucket_attributes: tuple[str, ...] = tuple(names)

    def __contains__(self, feature_key: object) -> bool:
        return feature_key in self.features

    @property
    def feature_keys(self) -> list[str]:
        """The payload's feature keys, in payload order."""
        return list(self.features)

    def evaluate(
        self,
        feature_key: str,
        attributes: Mapping[str, Any],
        *,
        forced_variations: Mapping[str, int] | None = None,
        url: str | None = None,
        sticky_buckets: StickyBuckets | None = None,
    ) -> FeatureResult:
        """Feature ``feature_key`` for one unit.

        ``forced_variations`` (experiment key → variation index) and ``url`` (its query string can
        force ``?experiment-key=N``) are GrowthBook's QA overrides. ``sticky_buckets``: the unit's
        sticky bucket documents (:meth:`load_sticky_buckets`), read and updated; without them,
        assignment is purely hash-based.
        """
        if forced_variations or url or sticky_buckets is not None:
            return self._evaluator.evaluate(
                feature_key, attributes, forced_variations, url, sticky=sticky_buckets
            )
        fast = self._fast.get(feature_key)
        if fast is not None:
            return fast(attributes, self._memo)
        return self._evaluator.evaluate(feature_key, attributes)

    def load_sticky_buckets(
        self, service: StickyBucketService, attributes: Mapping[str, Any]
    ) -> StickyBuckets:
        """One unit's sticky bucket documents from ``service``, for :meth:`evaluate`; assignments
        made with them are saved back to ``service``."""
        return StickyBuckets.load(service, attributes, self.sticky_bucket_attributes)

    def evaluate_all(
        self, attributes: Mapping[str, Any], *, sticky_buckets: StickyBuckets | None = None
    ) -> dict[str, FeatureResult]:
        """Every feature of the payload for one unit."""
        if sticky_buckets is not None:
            return {
                key: self._evaluator.evaluate(key, attributes, sticky=sticky_buckets) for key in self.features
            }
        evaluate = self._evaluator.evaluate
        memo: dict[str, int] = {}  # the unit's v1 hash states, shared by its features' rules
        return {
            key: fast(attributes, memo) if fast is not None else evaluate(key, attributes)
            for key, fast in self._all
        }

    def evaluate_many(
        self, feature_key: str, units: Sequence[Mapping[str, Any]], *, vectorized: bool = True
    ) -> list[FeatureResult]:
        """Feature ``feature_key`` for many units, in order; identical to :meth:`evaluate` per unit.

        Hashing and bucketing run column-wise with numpy (see :mod:`assignment.bulk`);
        ``vectorized=False`` loops over :meth:`evaluate` instead.
        """
        if not vectorized:
            evaluate = self._evaluator.evaluate
            return [evaluate(feature_key, unit) for unit in units]
        from assignment.bulk import evaluate_feature_many

        return evaluate_feature_many(self, feature_key, units)

    def compile_experiment(
        self,
        experiment: Mapping[str, Any],
        *,
        forced_variations: Mapping[str, int] | None = None,
        url: str | None = None,
    ) -> CompiledExperiment:
        """An inline experiment (GrowthBook's ``Experiment``) bound to this payload's features
        (for its prerequisites) and saved groups (for its condition)."""
        condition = experiment.get("condition")
        parents_spec = experiment.get("parentConditions")
        prerequisites = None
        if parents_spec:
            parents = [ParentCondition(p, self.saved_groups) for p in parents_spec]
            check = self._evaluator.check_prerequisites

            def prerequisites(attributes: Mapping[str, Any], stack: tuple[str, ...]) -> str:
                return check(parents, attributes, forced_variations, url, stack)

        return CompiledExperiment(
            experiment,
            key=str(experiment.get("key", "")),
            feature_key=None,
            check_filters=True,
            condition=compile_condition(condition, self.saved_groups) if condition else None,
            prerequisites=prerequisites,
            enabled=self.enabled,
            qa_mode=self.qa_mode,
        )

    def run_experiment(
        self,
        experiment: Mapping[str, Any],
        attributes: Mapping[str, Any],
        *,
        forced_variations: Mapping[str, int] | None = None,
        url: str | None = None,
    ) -> ExperimentResult:
        """Run an inline experiment for one unit (GrowthBook's ``run``)."""
        compiled = self.compile_experiment(experiment, forced_variations=forced_variations, url=url)
        return compiled.run_or_exclude(attributes, forced_variations, url)


def compile_payload(
    payload: Mapping[str, Any], *, qa_mode: bool = False, enabled: bool = True
) -> CompiledPayload:
    """Compile a GrowthBook SDK payload (``{"features": {...}, "savedGroups": {...}}``)."""
    return CompiledPayload(payload, qa_mode=qa_mode, enabled=enabled)
