"""Engine details the conformance cases do not pin down: bulk = per unit, vectorized hashing,
forced variations, prerequisites in bulk, payload validation."""

from __future__ import annotations

import pytest

from assignment import compile_payload, gbhash
from assignment.vectorized import gbhash_many
from xpcore.errors import ValidationError

pytestmark = pytest.mark.usefixtures("hash_path")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("seed", ["", "seed", "ü😀"])
def test_vectorized_hash_matches_scalar(version: int, seed: str) -> None:
    values = ["", "a", "user-1", "😀x", "ééé", "x" * 300, "abc\x00", "12345678901234", "\ud800"]
    values += [f"u{i}" for i in range(500)]
    hashed = gbhash_many(seed, values, version)
    assert hashed is not None
    assert hashed.tolist() == [gbhash(seed, value, version) for value in values]


def test_unknown_hash_version_is_none() -> None:
    assert gbhash_many("s", ["a"], 3) is None
    assert gbhash("s", "a", 3) is None


PAYLOAD = {
    "features": {
        "parent": {"defaultValue": True, "rules": [{"force": False, "condition": {"country": "FR"}}]},
        "child": {
            "defaultValue": "off",
            "rules": [
                {"parentConditions": [{"id": "parent", "condition": {"value": True}, "gate": True}]},
                {"key": "exp", "variations": ["a", "b", "c"], "coverage": 0.7, "hashVersion": 2},
            ],
        },
        "rollout": {"defaultValue": 0, "rules": [{"force": 1, "coverage": 0.3, "range": None}]},
    }
}


@pytest.mark.parametrize("feature", ["child", "rollout", "parent", "missing"])
def test_bulk_equals_per_unit(feature: str) -> None:
    payload = compile_payload(PAYLOAD)
    units = [{"id": f"u{i}", "country": "FR" if i % 5 == 0 else "US"} for i in range(300)] + [{}, {"id": 0}]
    assert payload.evaluate_many(feature, units) == [payload.evaluate(feature, unit) for unit in units]


def test_prerequisite_gate_and_sources() -> None:
    payload = compile_payload(PAYLOAD)
    assert payload.evaluate("child", {"id": "u1", "country": "FR"}).source == "prerequisite"
    assert payload.evaluate("missing", {"id": "u1"}).source == "unknownFeature"


def test_forced_variation_is_in_experiment_without_hashing() -> None:
    payload = compile_payload(PAYLOAD)
    result = payload.evaluate("child", {"id": "u1", "country": "US"}, forced_variations={"exp": 2})
    assert (result.value, result.variation_id, result.in_experiment, result.hash_used) == (
        "c",
        2,
        True,
        False,
    )
    by_url = payload.evaluate("child", {"id": "u1"}, url="https://x.test/?exp=1")
    assert (by_url.value, by_url.hash_used) == ("b", False)


def test_qa_mode_skips_experiments_but_not_forces() -> None:
    payload = compile_payload(PAYLOAD, qa_mode=True)
    assert payload.evaluate("child", {"id": "u1"}).source == "defaultValue"
    assert payload.evaluate("parent", {"id": "u1", "country": "FR"}).source == "force"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"features": []}, "'features'"),
        ({"features": {"f": {"rules": {}}}}, "'rules'"),
        ({"features": {"f": {"rules": [{"coverage": "all"}]}}}, "'coverage'"),
        ({"features": {"f": {"rules": [{"namespace": ["n", 0]}]}}}, "'namespace'"),
    ],
)
def test_invalid_payloads_name_the_problem(payload: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        compile_payload(payload)  # type: ignore[arg-type]
