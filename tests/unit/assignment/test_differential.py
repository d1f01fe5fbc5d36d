"""Differential test: random payloads and units, evaluated by this engine and by the GrowthBook
Python SDK (``growthbook`` 4.0.0, a dev dependency), must agree on value, source and variation.

Conditions compare attributes with operands of the same JSON type: on mixed types (``"8" > 5``,
a missing attribute against a number) the SDK 4.0.0 deliberately departs from JavaScript and from
the conformance cases, which this engine follows (see docs/assignment.md).
"""

from __future__ import annotations

import logging
from typing import Any

import growthbook  # a dev dependency like pytest itself: missing, the test must fail, not skip
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assignment import compile_payload

pytestmark = pytest.mark.usefixtures("hash_path")

COUNTRIES = ["US", "CA", "FR", "GB"]

conditions = st.recursive(
    st.one_of(
        st.builds(lambda c: {"country": {"$in": c}}, st.lists(st.sampled_from(COUNTRIES), max_size=3)),
        st.builds(lambda c: {"country": c}, st.sampled_from(COUNTRIES)),
        st.builds(lambda n: {"age": {"$gte": n}}, st.integers(0, 90)),
        st.builds(lambda n: {"age": {"$lt": n}}, st.integers(0, 90)),
        st.builds(
            lambda v: {"version": {"$vgte": v}}, st.sampled_from(["1.0.0", "2.1.0", "2.1.0-beta", "10.0"])
        ),
        st.builds(lambda t: {"tags": {"$elemMatch": {"$eq": t}}}, st.sampled_from(["a", "b", "c"])),
        st.builds(lambda t: {"tags": {"$all": t}}, st.lists(st.sampled_from(["a", "b"]), max_size=2)),
        st.just({"email": {"$regex": "@example\\.com$"}}),
        st.just({"beta": True}),
        st.just({"missing": {"$exists": False}}),
    ),
    lambda inner: st.one_of(
        st.builds(lambda cs: {"$or": cs}, st.lists(inner, max_size=3)),
        st.builds(lambda cs: {"$and": cs}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"$not": c}, inner),
    ),
    max_leaves=4,
)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["condition"] = draw(conditions)
    if draw(st.booleans()):
        rule["force"] = draw(st.sampled_from(["forced", 7, True, {"a": 1}]))
        if draw(st.booleans()):
            rule["coverage"] = draw(st.floats(0, 1))
        if draw(st.booleans()):
            rule["hashAttribute"] = draw(st.sampled_from(["id", "device"]))
            rule["fallbackAttribute"] = "device"
        return rule
    count = draw(st.integers(2, 4))
    rule["variations"] = [f"v{i}" for i in range(count)]
    rule["key"] = draw(st.sampled_from(["exp-a", "exp-b", ""]))
    if draw(st.booleans()):
        raw = draw(st.lists(st.integers(1, 9), min_size=count, max_size=count))
        rule["weights"] = [r / sum(raw) for r in raw]
    if draw(st.booleans()):
        rule["coverage"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        rule["hashVersion"] = draw(st.sampled_from([1, 2]))
    if draw(st.booleans()):
        rule["seed"] = draw(st.text(max_size=6))
    if draw(st.booleans()):
        start = draw(st.floats(0, 1))
        rule["namespace"] = ["ns", start, min(1.0, start + draw(st.floats(0, 1)))]
    if draw(st.booleans()):
        rule["filters"] = [{"seed": "f", "ranges": [[0, draw(st.floats(0, 1))]], "hashVersion": 2}]
    if draw(st.booleans()):
        rule["meta"] = [{"key": f"k{i}", "passthrough": i == 0 and draw(st.booleans())} for i in range(count)]
    if draw(st.booleans()):
        rule["hashAttribute"] = draw(st.sampled_from(["id", "device"]))
    return rule


units = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(max_size=10), st.integers(-5, 10**6), st.just(""), st.none()),
        "device": st.text(max_size=6),
        "country": st.sampled_from(COUNTRIES),
        "age": st.integers(0, 99),
        "version": st.sampled_from(["0.9.1", "2.1.0", "2.1.0-beta", "10.0.1"]),
        "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
        "email": st.sampled_from(["a@example.com", "b@other.org"]),
        "beta": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    feature_rules=st.lists(rules(), max_size=4),
    default=st.sampled_from([None, 0, "off"]),
    sample=st.lists(units, min_size=1, max_size=40),
)
def test_engine_agrees_with_growthbook_sdk(
    feature_rules: list[dict[str, Any]], default: Any, sample: list[dict[str, Any]]
) -> None:
    features = {"f": {"defaultValue": default, "rules": feature_rules}}
    payload = compile_payload({"features": features})
    sdk = growthbook.GrowthBook(features=features)
    logging.getLogger("growthbook").setLevel(logging.ERROR)
    ours_bulk = payload.evaluate_many("f", sample * 2)  # ≥ 32 units: the vectorized path
    for index, unit in enumerate(sample):
        sdk.set_attributes(unit)
        theirs = sdk.eval_feature("f")
        ours = payload.evaluate("f", unit)
        assert ours == ours_bulk[index] == ours_bulk[index + len(sample)]
        assert (ours.value, ours.source) == (theirs.value, theirs.source), (unit, features)
        if theirs.experimentResult is not None and theirs.source == "experiment":
            result = theirs.experimentResult
            assert ours.variation_id == result.variationId
            assert ours.in_experiment == result.inExperiment
            assert ours.hash_used == result.hashUsed
            assert ours.bucket == result.bucket
            assert ours.experiment_key == theirs.experiment.key


@pytest.mark.parametrize("condition", [{"$or": []}, {}, {"$and": []}, {"$nor": []}, {"$not": {"$or": []}}])
def test_bulk_evaluation_of_a_condition_that_reads_no_attribute_equals_one_unit_at_a_time(
    condition: dict[str, Any],
) -> None:
    """Found by the differential test above: bulk evaluation memoizes a condition per combination of the
    attributes it reads, and a condition reading none (``$or: []`` passes in every SDK) matched no unit."""
    features = {"f": {"defaultValue": None, "rules": [{"condition": condition, "force": "forced"}]}}
    payload = compile_payload({"features": features})
    units = [{"id": f"u{i}"} for i in range(40)]
    single = [payload.evaluate("f", unit) for unit in units]
    assert payload.evaluate_many("f", units) == single
    sdk = growthbook.GrowthBook(features=features)
    sdk.set_attributes(units[0])
    assert single[0].value == sdk.eval_feature("f").value
