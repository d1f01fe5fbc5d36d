"""The per-unit fast path (rule chains, the shared hash memo, fused conditions) gives exactly the
general rule loop's results, including past the memo's bound and on odd attribute types."""

from __future__ import annotations

from typing import Any

import pytest

from assignment import compile_payload
from assignment.hashing import MEMO_LIMIT, SeededHash, native_hashing_enabled

pytestmark = pytest.mark.usefixtures("hash_path")

PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout": {
            "defaultValue": "control",
            "rules": [
                {"id": "qa", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": "qa"},
                {
                    "key": "checkout-exp",
                    "hashVersion": 2,
                    "condition": {"country": {"$in": ["US", "CA"]}, "app": {"$vgte": "2.0.0"}},
                    "namespace": ["checkout", 0, 0.8],
                    "coverage": 0.9,
                    "variations": ["control", "one-page", "express"],
                },
            ],
        },
        "banner": {"defaultValue": False, "rules": [{"force": True, "coverage": 0.5}]},
        "pricing": {
            "defaultValue": 10,
            "rules": [
                {"condition": {"country": {"$nin": ["FR"]}, "age": {"$lt": 18}}, "force": 0},
                {
                    "key": "pricing-exp",
                    "condition": {"$or": [{"plan": "pro"}, {"age": {"$gte": 30}}]},
                    "variations": [10, 12],
                },
                {"condition": {"plan": {"$in": ["team", 3]}, "age": {"$gt": 5}}, "force": 11},
            ],
        },
    }
}
ODD = [None, True, False, 0, 1, 30, 30.5, "30", "pro", "", [], ["pro"], {"a": 1}, float("nan")]


def _units(count: int) -> list[dict[str, Any]]:
    units = []
    for i in range(count):
        odd = ODD[i % len(ODD)]
        units.append(
            {
                "id": f"user-{i}" if i % 11 else i,  # numbers hash as JS prints them
                "country": ["US", "CA", "FR", odd][i % 4],
                "app": [f"{i % 3}.{i % 5}.0", odd][i % 2],
                "email": "qa@example.com" if i % 97 == 0 else [f"u{i}@mail.test", odd][i % 2],
                "plan": ["free", "pro", "team", odd][i % 4],
                "age": [i % 60, odd][i % 3 == 0],
            }
        )
    return units


def test_fast_path_equals_the_general_loop_across_the_memo_bound() -> None:
    payload = compile_payload(PAYLOAD)
    units = _units(MEMO_LIMIT + 1500)
    keys = payload.feature_keys
    nothing_forced = {"no-such-experiment": 0}  # same results, but through the general rule loop
    for index, unit in enumerate(units):
        expected = {key: payload._evaluator.evaluate(key, unit, nothing_forced) for key in keys}
        assert {key: payload.evaluate(key, unit) for key in keys} == expected
        if index % 4 == 0:
            assert payload.evaluate_all(unit) == expected
    if native_hashing_enabled():  # C hashes need no memo: it stays empty
        assert payload._memo == {}
    else:
        assert 0 < len(payload._memo) <= MEMO_LIMIT


def test_memoized_v1_hash_equals_the_plain_one() -> None:
    function = SeededHash("seed", 1).function()
    assert function is not None
    memo: dict[str, int] = {}
    values = [f"v{i}" for i in range(MEMO_LIMIT + 10)] + ["é-unicode", "x" * 40]
    first = [function(value, memo) for value in values]
    again = [function(value, memo) for value in values]
    plain = [SeededHash("seed", 1)(value) for value in values]
    assert first == again == plain
    assert len(memo) <= MEMO_LIMIT
