"""GrowthBook's cross-SDK conformance cases, one test per case (ids are the case names).

Sections run: hash, getBucketRange, chooseVariation, inNamespace, getEqualWeights, evalCondition,
feature, run, stickyBucket. Not run, with the reason in NOT_RUN: getQueryStringOverride and urlRedirect
(browser concerns), decrypt (encrypted payloads are not supported). A test checks that every section of the
file is one or the other, so a section a newer file adds is not silently left untested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from assignment import (
    choose_variation,
    compile_payload,
    eval_condition,
    gbhash,
    get_bucket_ranges,
    get_equal_weights,
    in_namespace,
)
from assignment.sticky import InMemoryStickyBucketService
from tests.unit.assignment.cases import SKIP_REASON, load_section, section_names

pytestmark = pytest.mark.usefixtures("hash_path")

NOT_RUN = {
    "getQueryStringOverride": "browser concern (URL parsing helper), not a server-side evaluator's",
    "urlRedirect": "browser concern (URL redirect experiments)",
    "decrypt": "encrypted payloads are not supported",
}
RUN: set[str] = set()  # filled by `cases` below, one name per section a test runs


def cases(section: str, name: Callable[[Any], str] = lambda case: str(case[0])) -> Any:
    """Parametrize over one section; a single skipped param when the cases file is absent."""
    RUN.add(section)
    loaded = load_section(section)
    if not loaded:
        return pytest.mark.parametrize(
            "case", [pytest.param(None, marks=pytest.mark.skip(reason=SKIP_REASON))]
        )
    ids = [f"{index}-{name(case)}" for index, case in enumerate(loaded)]
    return pytest.mark.parametrize("case", loaded, ids=ids)


@cases("hash", name=lambda case: f"{case[0]}|{case[1]}|v{case[2]}")
def test_hash(case: list[Any]) -> None:
    seed, value, version, expected = case
    assert gbhash(seed, value, version) == expected


@cases("getBucketRange")
def test_get_bucket_range(case: list[Any]) -> None:
    _, (num_variations, coverage, weights), expected = case
    actual = get_bucket_ranges(num_variations, coverage, weights)
    assert [[round(x, 6) for x in r] for r in actual] == [[round(x, 6) for x in r] for r in expected]


@cases("chooseVariation")
def test_choose_variation(case: list[Any]) -> None:
    _, n, ranges, expected = case
    assert choose_variation(n, ranges) == expected


@cases("inNamespace")
def test_in_namespace(case: list[Any]) -> None:
    _, unit_id, namespace, expected = case
    assert in_namespace(unit_id, namespace) is expected


@cases("getEqualWeights", name=lambda case: f"n={case[0]}")
def test_get_equal_weights(case: list[Any]) -> None:
    num_variations, expected = case
    assert [round(w, 8) for w in get_equal_weights(num_variations)] == [round(w, 8) for w in expected]


@cases("evalCondition")
def test_eval_condition(case: list[Any]) -> None:
    _, condition, attributes, expected, *rest = case
    saved_groups = rest[0] if rest else None
    assert eval_condition(attributes, condition, saved_groups) is expected


def _experiment_result_as_growthbook(result: Any) -> dict[str, Any]:
    data = {
        "featureId": result.feature_key,
        "variationId": result.variation_id,
        "inExperiment": result.in_experiment,
        "value": result.value,
        "hashUsed": result.hash_used,
        "hashAttribute": result.hash_attribute,
        "hashValue": result.hash_value,
        "key": result.variation_key,
        "stickyBucketUsed": False,
    }
    if result.bucket is not None:
        data["bucket"] = result.bucket
    if result.variation_name:
        data["name"] = result.variation_name
    return data


@cases("feature")
def test_feature(case: list[Any]) -> None:
    _, context, feature_key, expected = case
    payload = compile_payload(
        {"features": context.get("features", {}), "savedGroups": context.get("savedGroups", {})},
        qa_mode=bool(context.get("qaMode", False)),
        enabled=context.get("enabled", True) is not False,
    )
    result = payload.evaluate(
        feature_key,
        context.get("attributes", {}),
        forced_variations=context.get("forcedVariations"),
        url=context.get("url"),
    )
    assert result.value == expected["value"]
    assert result.source == expected["source"]
    assert result.on is expected["on"]
    assert result.off is expected["off"]
    assert result.rule_id == expected.get("ruleId", "")
    if "experimentResult" in expected:
        want = dict(expected["experimentResult"])
        want.pop("passthrough", None)  # a passthrough variation never becomes the feature's result
        assert result.experiment_key == expected["experiment"]["key"]
        actual = _experiment_result_as_growthbook(
            _FeatureAsExperiment(result, feature_key)  # same fields, GrowthBook's names
        )
        assert actual == want
    else:
        assert result.in_experiment is False
        assert result.variation_id is None


class _FeatureAsExperiment:
    def __init__(self, result: Any, feature_key: str) -> None:
        self.feature_key = feature_key
        self.variation_id = result.variation_id
        self.in_experiment = result.in_experiment
        self.value = result.value
        self.hash_used = result.hash_used
        self.hash_attribute = result.hash_attribute
        self.hash_value = result.hash_value
        self.variation_key = result.variation_key
        self.bucket = result.bucket
        self.variation_name = result.variation_name


@cases("run")
def test_run(case: list[Any]) -> None:
    _, context, experiment, value, in_experiment, hash_used = case
    payload = compile_payload(
        {"features": context.get("features", {}), "savedGroups": context.get("savedGroups", {})},
        qa_mode=bool(context.get("qaMode", False)),
        enabled=context.get("enabled", True) is not False,
    )
    result = payload.run_experiment(
        experiment,
        context.get("attributes", {}),
        forced_variations=context.get("forcedVariations"),
        url=context.get("url"),
    )
    assert result.value == value
    assert result.in_experiment is in_experiment
    assert result.hash_used is hash_used


@cases("stickyBucket")
def test_sticky_bucket(case: list[Any]) -> None:
    _, context, stored_docs, feature_key, expected, expected_docs = case
    service = InMemoryStickyBucketService()
    for doc in stored_docs:
        service.save_assignments(doc)
    payload = compile_payload({"features": context.get("features", {})})
    attributes = context.get("attributes", {})
    sticky = payload.load_sticky_buckets(service, attributes)
    result = payload.evaluate(feature_key, attributes, sticky_buckets=sticky)
    if expected is None:
        assert result.in_experiment is False
    else:
        actual = _experiment_result_as_growthbook(_FeatureAsExperiment(result, feature_key))
        actual["stickyBucketUsed"] = result.sticky_bucket_used
        assert actual == expected
    assert sticky.docs == expected_docs
    for key, doc in expected_docs.items():  # what changed was saved to the service
        name, value = key.split("||", 1)
        assert service.get_assignments(name, value) == doc


def test_every_section_is_run_or_has_a_reason_not_to_be() -> None:
    """A section the cases file gains (or renames) must not go silently untested."""
    sections = section_names()
    if not sections:
        pytest.skip(SKIP_REASON)
    assert RUN.isdisjoint(NOT_RUN)
    assert sections == RUN | set(NOT_RUN)
