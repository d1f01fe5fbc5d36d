"""Where GrowthBook's SDKs disagree, the engine follows the JavaScript SDK (the reference the
conformance cases come from); docs/assignment.md lists each known divergence from the Python SDK.

The JavaScript results are computed by the JavaScript SDK itself (tests/js), not written down here."""

from __future__ import annotations

from typing import Any

import pytest
from growthbook.core import evalCondition

from assignment.conditions import compile_condition
from tests.js_support import run_node_json

# (attributes, condition, the Python SDK 4.0.0 disagrees with the JavaScript SDK)
CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({}, {"version": {"$vlt": "2.0.0-beta"}}, True),
    ({}, {"version": {"$vlte": "0.0.0"}}, True),
    ({}, {"version": {"$veq": "0"}}, True),
    ({}, {"version": {"$vgt": "0.0.1"}}, False),
    ({}, {"version": {"$vne": "1.0.0"}}, False),
    ({"version": None}, {"version": {"$vlt": "1.0.0"}}, True),
    ({"version": True}, {"version": {"$vlt": "1.0.0"}}, True),
    ({}, {"age": {"$lte": 21}}, True),
    ({}, {"age": {"$lt": 21}}, True),
    ({}, {"age": {"$gte": 0}}, True),
    ({}, {"age": {"$gt": 0}}, False),
    ({"age": None}, {"age": {"$lte": 21}}, True),
]


@pytest.fixture(scope="module")
def javascript() -> list[bool]:
    return list(run_node_json("conditions.js", _json([[a, c] for a, c, _ in CASES])))


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_engine_follows_the_javascript_sdk(index: int, javascript: list[bool]) -> None:
    attributes, condition, _ = CASES[index]
    assert compile_condition(condition, {})(attributes) is javascript[index], (attributes, condition)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_the_documented_python_sdk_divergences_still_hold(index: int, javascript: list[bool]) -> None:
    attributes, condition, diverges = CASES[index]
    python = bool(evalCondition(attributes, condition, {}))
    assert (python != javascript[index]) is diverges, (attributes, condition, python, javascript[index])
