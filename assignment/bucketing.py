"""Bucketing maths: weights and coverage → bucket ranges, a hash → a variation, namespaces.

A unit's hash ``n`` (see :mod:`assignment.hashing`) falls in ``[0, 1)``. Variation ``i`` owns the
half-open range ``[start_i, start_i + coverage * w_i)`` where ``start_i`` is the sum of the
weights before it, so raising coverage only widens each range from its fixed start and never
moves an included unit to another variation. A unit in no range is not in the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from assignment.hashing import gbhash

__all__ = [
    "WEIGHT_SUM_MAX",
    "WEIGHT_SUM_MIN",
    "choose_variation",
    "get_bucket_ranges",
    "get_equal_weights",
    "in_namespace",
    "in_range",
    "is_valid_weight_vector",
    "normalized_weights",
]

WEIGHT_SUM_MIN = 0.99
WEIGHT_SUM_MAX = 1.01

BucketRange = tuple[float, float]


def get_equal_weights(num_variations: int) -> list[float]:
    """``num_variations`` equal weights (an empty list below one variation)."""
    if num_variations < 1:
        return []
    return [1 / num_variations for _ in range(num_variations)]


def is_valid_weight_vector(weights: Any, num_variations: int) -> bool:
    """One finite, non-negative number per variation, summing to 1 ± 0.01."""
    if not isinstance(weights, list) or len(weights) != num_variations:
        return False
    try:
        if not all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights
        ):
            return False
        return WEIGHT_SUM_MIN <= sum(weights) <= WEIGHT_SUM_MAX
    except OverflowError:
        return False


def normalized_weights(num_variations: int, weights: Any) -> list[float]:
    """The weights bucketing uses: ``weights`` when valid, equal weights otherwise."""
    if is_valid_weight_vector(weights, num_variations):
        return list(weights)
    return get_equal_weights(num_variations)


def get_bucket_ranges(
    num_variations: int, coverage: float = 1, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """The bucket range of each variation for ``coverage`` (clamped to [0, 1]) and ``weights``."""
    coverage = min(max(coverage, 0), 1)
    cumulative: float = 0
    ranges: list[BucketRange] = []
    for weight in normalized_weights(num_variations, weights):
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bucket_range: Sequence[float]) -> bool:
    """Whether ``n`` falls in the half-open range ``[start, end)``."""
    return bucket_range[0] <= n < bucket_range[1]


def choose_variation(n: float, ranges: Sequence[Sequence[float]]) -> int:
    """The index of the first range holding ``n``, or -1 when none does."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(hash_value: str, namespace: Sequence[Any]) -> bool:
    """Whether a unit is in namespace ``[id, start, end]`` (v1 hash of the unit under ``"__" + id``)."""
    n = gbhash("__" + namespace[0], hash_value, 1)
    if n is None:
        return False
    return bool(namespace[1] <= n < namespace[2])
