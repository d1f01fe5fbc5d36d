"""Invariants of assignment (hypothesis): determinism, splits that follow the weights, and
coverage ramps that never move an included unit to another variation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from assignment import compile_payload, get_bucket_ranges

pytestmark = pytest.mark.usefixtures("hash_path")

unit_ids = st.text(min_size=1, max_size=24)
seeds = st.text(max_size=12)
hash_versions = st.sampled_from([1, 2])


@st.composite
def weight_vectors(draw: st.DrawFn, min_size: int = 2, max_size: int = 4) -> list[float]:
    raw = draw(st.lists(st.integers(1, 20), min_size=min_size, max_size=max_size))
    total = sum(raw)
    return [r / total for r in raw]


def experiment_payload(
    seed: str, version: int, weights: list[float], coverage: float = 1.0, **extra: Any
) -> dict[str, Any]:
    rule = {
        "key": "exp",
        "seed": seed,
        "hashVersion": version,
        "variations": list(range(len(weights))),
        "weights": weights,
        "coverage": coverage,
        **extra,
    }
    return {"features": {"f": {"defaultValue": -1, "rules": [rule]}}}


@settings(max_examples=50, deadline=None)
@given(unit_id=unit_ids, seed=seeds, version=hash_versions, weights=weight_vectors())
def test_same_unit_gets_same_variation(unit_id: str, seed: str, version: int, weights: list[float]) -> None:
    payload = experiment_payload(seed, version, weights)
    first = compile_payload(payload).evaluate("f", {"id": unit_id})
    again = compile_payload(payload).evaluate("f", {"id": unit_id, "other": 1})
    in_bulk = compile_payload(payload).evaluate_many("f", [{"id": unit_id}] * 40)
    assert first.variation_id == again.variation_id
    assert first.value == again.value
    assert all(result == first for result in in_bulk)


def expected_shares(version: int, weights: list[float], coverage: float) -> list[float]:
    """Exact probability of each variation given the hash's bucket grid (1000 or 10000 values)."""
    buckets = 1000 if version == 1 else 10000
    ranges = get_bucket_ranges(len(weights), coverage, weights)
    counts = [0] * len(weights)
    for b in range(buckets):
        n = b / buckets
        for index, (start, end) in enumerate(ranges):
            if start <= n < end:
                counts[index] += 1
                break
    return [c / buckets for c in counts]


# A statistical check (alpha 1e-4 per example): derandomized, so every run draws the same examples and the
# suite does not fail once in a few thousand runs by chance (random examples found one such draw).
@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    prefix=st.text(alphabet="abcdefxyz-_", max_size=6),
    seed=seeds,
    version=hash_versions,
    weights=weight_vectors(),
)
def test_split_follows_weights_over_100k_units(
    prefix: str, seed: str, version: int, weights: list[float]
) -> None:
    units = [{"id": f"{prefix}{i}"} for i in range(100_000)]
    results = compile_payload(experiment_payload(seed, version, weights)).evaluate_many("f", units)
    observed = [0] * len(weights)
    for result in results:
        assert result.in_experiment
        observed[result.value] += 1
    shares = expected_shares(version, weights, 1.0)
    expected = [share * len(units) for share in shares]
    # chi-square goodness of fit against the exact bucket shares; alpha = 1e-4
    test = stats.chisquare(observed, expected)
    assert test.pvalue > 1e-4, (observed, expected, test)


@settings(max_examples=25, deadline=None)
@given(
    seed=seeds,
    version=hash_versions,
    weights=weight_vectors(),
    coverages=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
    prefix=st.text(max_size=4),
)
def test_raising_coverage_never_moves_an_included_unit(
    seed: str, version: int, weights: list[float], coverages: list[float], prefix: str
) -> None:
    low, high = coverages
    units = [{"id": f"{prefix}{i}"} for i in range(500)]
    before = compile_payload(experiment_payload(seed, version, weights, low)).evaluate_many("f", units)
    after = compile_payload(experiment_payload(seed, version, weights, high)).evaluate_many("f", units)
    for old, new in zip(before, after, strict=True):
        if old.in_experiment:
            assert new.in_experiment
            assert new.variation_id == old.variation_id
