"""Experiments compiled for fast per-unit assignment, following GrowthBook's ``runExperiment``.

Order of checks for one unit (GrowthBook's, minus deprecated fields; sticky bucketing, when a
:class:`~assignment.sticky.StickyBuckets` is given, as described in :mod:`assignment.sticky`):

1. fewer than two variations, or the engine disabled → not in the experiment
2. variation forced by the URL query string (``?exp-key=1``) or by ``forced_variations`` → that one
3. inactive (``active: false`` / ``status: draft``) → not in
4. no usable hash attribute value → not in
5. filters (or, without filters, the namespace), the condition, prerequisites → not in when failing
6. hash (seed, version) → the first bucket range holding it; none → not in
7. ``force`` → that variation; QA mode or ``status: stopped`` → not in
8. in the experiment, hashed

Rules of a feature reuse the same class (:meth:`CompiledExperiment.from_rule`); their condition,
filters and prerequisites are checked by the feature loop, as GrowthBook does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from assignment.bucketing import get_bucket_ranges
from assignment.hashing import SeededHash, hash_string, is_hashable
from assignment.results import ExperimentResult

if TYPE_CHECKING:
    from assignment.sticky import StickyBuckets

__all__ = [
    "CompiledExperiment",
    "CompiledFilter",
    "attribute_hash_value",
    "get_query_string_override",
    "is_filtered_out",
]


def attribute_hash_value(
    attributes: Mapping[str, Any], attribute: str, fallback: str | None = None
) -> tuple[str, Any]:
    """The hash attribute actually used and its raw value (``""`` when the unit has none usable)."""
    value = attributes.get(attribute)
    if is_hashable(value):
        return attribute, value
    if fallback:
        value = attributes.get(fallback)
        if is_hashable(value):
            return fallback, value
    return attribute, ""


class CompiledFilter:
    """One entry of a rule's ``filters``: the unit's hash under ``seed`` must fall in a range."""

    __slots__ = ("attribute", "hasher", "ranges")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        attribute = spec.get("attribute", "id")
        self.attribute: str = attribute if attribute is not None else "id"
        version = spec.get("hashVersion", 2)
        self.hasher = SeededHash(str(spec.get("seed", "")), version if isinstance(version, int) else -1)
        self.ranges: list[tuple[float, float]] = [(r[0], r[1]) for r in spec.get("ranges") or []]

    def passes(self, attributes: Mapping[str, Any]) -> bool:
        value = hash_string(attributes.get(self.attribute))
        if not value:
            return False
        n = self.hasher(value)
        if n is None:
            return False
        return any(start <= n < end for start, end in self.ranges)


def is_filtered_out(filters: Sequence[CompiledFilter], attributes: Mapping[str, Any]) -> bool:
    """Whether any filter excludes the unit."""
    return not all(f.passes(attributes) for f in filters)


def get_query_string_override(key: str, url: str, num_variations: int) -> int | None:
    """The variation forced by ``?key=N`` in ``url``, if valid."""
    from urllib.parse import parse_qs, urlparse

    try:
        query = urlparse(url).query
    except ValueError:
        return None
    if not query:
        return None
    values = parse_qs(query).get(key)
    if not values:
        return None
    text = values[0]
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        variation = int(text)
    except ValueError:
        return None
    return variation if 0 <= variation < num_variations else None


PrerequisiteCheck = Callable[[Mapping[str, Any], tuple[str, ...]], str]


class CompiledExperiment:
    """An experiment (inline or a feature's rule) ready to assign units."""

    __slots__ = (
        "active",
        "bucket_version",
        "condition",
        "fallback_attribute",
        "feature_key",
        "filters",
        "force",
        "hash_attribute",
        "hasher",
        "key",
        "meta_keys",
        "min_bucket_version",
        "namespace_hasher",
        "namespace_range",
        "num_variations",
        "prerequisites",
        "qa_mode",
        "ranges",
        "skip",
        "sticky",
        "stopped",
        "variation_meta",
        "variations",
    )

    def __init__(
        self,
        spec: Mapping[str, Any],
        *,
        key: str,
        feature_key: str | None,
        check_filters: bool,
        condition: Callable[[Any], bool] | None,
        prerequisites: PrerequisiteCheck | None,
        enabled: bool,
        qa_mode: bool,
    ) -> None:
        variations = spec.get("variations")
        self.variations: list[Any] = list(variations) if isinstance(variations, list) else []
        self.num_variations = len(self.variations)
        self.key = key
        self.feature_key = feature_key
        self.skip = self.num_variations < 2 or not enabled
        self.active = spec.get("active", True) is not False and spec.get("status") != "draft"
        self.stopped = spec.get("status") == "stopped"
        hash_attribute = spec.get("hashAttribute", "id")
        self.hash_attribute: str = hash_attribute if hash_attribute is not None else "id"
        self.hasher = SeededHash(str(spec.get("seed") or key), spec.get("hashVersion") or 1)
        # sticky bucketing (assignment.sticky): used only when a StickyBuckets is given to run()
        self.sticky = not spec.get("disableStickyBucketing")
        fallback = spec.get("fallbackAttribute")
        self.fallback_attribute: str | None = fallback if isinstance(fallback, str) and fallback else None
        self.bucket_version = _int(spec.get("bucketVersion"))
        self.min_bucket_version = _int(spec.get("minBucketVersion"))
        filter_specs = spec.get("filters")
        self.filters: list[CompiledFilter] | None = (
            [CompiledFilter(f) for f in filter_specs] if check_filters and filter_specs else None
        )
        namespace = spec.get("namespace")
        self.namespace_hasher: SeededHash | None = None
        self.namespace_range = (0.0, 1.0)
        if namespace and not filter_specs:  # filters replace the namespace
            self.namespace_hasher = SeededHash("__" + str(namespace[0]), 1)
            self.namespace_range = (namespace[1], namespace[2])
        self.condition = condition
        self.prerequisites = prerequisites
        coverage = spec.get("coverage")
        self.ranges: list[tuple[float, float]] = [
            (r[0], r[1])
            for r in (
                spec.get("ranges")
                or get_bucket_ranges(
                    self.num_variations, coverage if coverage is not None else 1, spec.get("weights")
                )
            )
        ]
        force = spec.get("force")
        self.force: int | None = force if isinstance(force, int) and not isinstance(force, bool) else None
        self.qa_mode = qa_mode
        meta = spec.get("meta") or []
        self.meta_keys: list[Any] = [entry.get("key") if isinstance(entry, dict) else None for entry in meta]
        self.variation_meta: list[tuple[str, str, bool]] = []
        for index in range(self.num_variations):
            entry = meta[index] if index < len(meta) and isinstance(meta[index], dict) else {}
            self.variation_meta.append(
                (str(entry.get("key", index)), entry.get("name") or "", bool(entry.get("passthrough")))
            )

    def hash_value(self, attributes: Mapping[str, Any]) -> tuple[str, Any]:
        """The hash attribute and raw value (experiments never use the fallback attribute
        without sticky bucketing, as in GrowthBook)."""
        return attribute_hash_value(attributes, self.hash_attribute)

    def result(
        self,
        attributes: Mapping[str, Any],
        variation: int = -1,
        hash_used: bool = False,
        bucket: float | None = None,
        sticky_bucket_used: bool = False,
    ) -> ExperimentResult:
        """GrowthBook's ``getExperimentResult``: an out-of-range variation means not in the experiment."""
        in_experiment = 0 <= variation < self.num_variations
        if not in_experiment:
            variation = 0
        hash_attribute, hash_value = self.hash_value(attributes)
        key, name, passthrough = (
            self.variation_meta[variation] if self.variation_meta else (str(variation), "", False)
        )
        return ExperimentResult(
            self.key,
            self.feature_key,
            self.variations[variation] if self.variations else None,
            variation,
            in_experiment,
            hash_used,
            hash_attribute,
            hash_value,
            bucket,
            key,
            name,
            passthrough,
            sticky_bucket_used,
        )

    def _forced(self, attributes: Mapping[str, Any], variation: Any) -> ExperimentResult | None:
        if not isinstance(variation, int) or isinstance(variation, bool):
            return None
        outcome = self.result(attributes, variation)
        return outcome if outcome.in_experiment else None

    def run(
        self,
        attributes: Mapping[str, Any],
        forced_variations: Mapping[str, Any] | None = None,
        url: str | None = None,
        stack: tuple[str, ...] = (),
        sticky: StickyBuckets | None = None,
    ) -> ExperimentResult | None:
        """Assign one unit; None when it is not in the experiment (see :meth:`result`), except
        that a unit whose sticky bucket is blocked by ``minBucketVersion`` gets a "not in" result
        with ``sticky_bucket_used`` set, as in GrowthBook."""
        if self.skip:
            return None
        if url:
            forced = get_query_string_override(self.key, url, self.num_variations)
            if forced is not None:
                return self.result(attributes, forced)
        if forced_variations and forced_variations.get(self.key) is not None:
            return self._forced(attributes, forced_variations[self.key])
        if not self.active:
            return None
        if sticky is not None and not self.sticky:
            sticky = None
        hash_attribute = self.hash_attribute
        if sticky is None:
            raw = attributes.get(hash_attribute)
        else:  # experiments use the fallback attribute only with sticky bucketing
            hash_attribute, raw = attribute_hash_value(attributes, hash_attribute, self.fallback_attribute)
        hash_value = raw if type(raw) is str else hash_string(raw)
        if not hash_value:
            return None
        stored, blocked = -1, False
        if sticky is not None:
            stored, blocked = sticky.variation(
                attributes,
                self.hash_attribute,
                self.fallback_attribute,
                self.key,
                self.bucket_version,
                self.min_bucket_version,
                self.meta_keys,
            )
            if stored >= self.num_variations:
                stored = -1
        if stored < 0 and not self._targets(attributes, hash_value, stack):
            return None
        n = self.hasher(hash_value)
        if n is None:
            return None
        variation = stored
        if stored < 0:
            for index, (start, end) in enumerate(self.ranges):
                if start <= n < end:
                    variation = index
                    break
        if blocked:
            return self.result(attributes, -1, sticky_bucket_used=True)
        if variation < 0:
            return None
        if self.force is not None:
            return self._forced(attributes, self.force)
        if self.qa_mode or self.stopped:
            return None
        key, name, passthrough = self.variation_meta[variation]
        if sticky is not None:
            sticky.save(hash_attribute, hash_value, f"{self.key}__{self.bucket_version}", key)
        return ExperimentResult(
            self.key,
            self.feature_key,
            self.variations[variation],
            variation,
            True,
            True,
            hash_attribute,
            raw,
            n,
            key,
            name,
            passthrough,
            stored >= 0,
        )

    def _targets(self, attributes: Mapping[str, Any], hash_value: str, stack: tuple[str, ...]) -> bool:
        """Filters (or namespace), condition and prerequisites, which a sticky bucket skips."""
        if self.filters is not None:
            for compiled_filter in self.filters:
                if not compiled_filter.passes(attributes):
                    return False
        elif self.namespace_hasher is not None:
            n_namespace = self.namespace_hasher(hash_value)
            start, end = self.namespace_range
            if n_namespace is None or not start <= n_namespace < end:
                return False
        if self.condition is not None and not self.condition(attributes):
            return False
        return not (self.prerequisites is not None and self.prerequisites(attributes, stack) != "pass")

    def run_or_exclude(
        self,
        attributes: Mapping[str, Any],
        forced_variations: Mapping[str, Any] | None = None,
        url: str | None = None,
        stack: tuple[str, ...] = (),
        sticky: StickyBuckets | None = None,
    ) -> ExperimentResult:
        """Like :meth:`run`, but a unit not in the experiment gets GrowthBook's "not in" result."""
        outcome = self.run(attributes, forced_variations, url, stack, sticky)
        return outcome if outcome is not None else self.result(attributes)


def _int(value: Any) -> int:
    """A bucket version: a non-negative integer, anything else is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
