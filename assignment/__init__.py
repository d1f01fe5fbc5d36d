"""GrowthBook-compatible assignment engine: pure, compiled once, fast per unit and in bulk.

Modules, from the bottom up:

- :mod:`assignment.hashing`: FNV-1a 32 over UTF-16 code units, hash v1/v2, attribute → hash string
- :mod:`assignment.bucketing`: weights + coverage → bucket ranges, hash → variation, namespaces
- :mod:`assignment.values`: JavaScript value semantics (types, equality, ordering, versions, paths)
- :mod:`assignment.conditions` (+ :mod:`assignment.operators`): the condition language compiled into closures
- :mod:`assignment.experiments`: one experiment's assignment steps (GrowthBook's ``runExperiment``)
- :mod:`assignment.features`: feature rules and GrowthBook's feature evaluation loop
- :mod:`assignment.compiled`: :class:`CompiledPayload`, the public entry point
- :mod:`assignment.bulk` / :mod:`assignment.vectorized`: many units at once with numpy

Also here, on top of the engine: the registry (:mod:`assignment.authoring` reads experiments files,
:mod:`assignment.analysis_block` holds the ``analysis:`` block's rules, :mod:`assignment.registry`,
:mod:`assignment.registry_changes`, :mod:`assignment.metrics_catalog`, :mod:`assignment.registry_topic`;
docs/registry.md) and the HTTP service (:mod:`assignment.service`; docs/service.md).

See docs/assignment.md.
"""

from __future__ import annotations

from assignment.bucketing import (
    choose_variation,
    get_bucket_ranges,
    get_equal_weights,
    in_namespace,
)
from assignment.compiled import CompiledPayload, compile_payload, validate_payload
from assignment.conditions import compile_condition, eval_condition
from assignment.hashing import fnv1a32, gbhash
from assignment.results import ExperimentResult, FeatureResult

__all__ = [
    "CompiledPayload",
    "ExperimentResult",
    "FeatureResult",
    "choose_variation",
    "compile_condition",
    "compile_payload",
    "eval_condition",
    "fnv1a32",
    "gbhash",
    "get_bucket_ranges",
    "get_equal_weights",
    "in_namespace",
    "validate_payload",
]
