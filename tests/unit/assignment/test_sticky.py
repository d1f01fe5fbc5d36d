"""Sticky bucketing beyond the conformance cases: stickiness across payload changes, versions,
the in-memory service's bound and client-sent documents."""

from __future__ import annotations

from typing import Any

import pytest

from assignment import compile_payload
from assignment.sticky import InMemoryStickyBucketService, StickyBuckets

pytestmark = pytest.mark.usefixtures("hash_path")


def _payload(weights: list[float], bucket_version: int = 0, min_bucket_version: int = 0) -> Any:
    rule = {
        "key": "exp",
        "variations": ["a", "b"],
        "weights": weights,
        "meta": [{"key": "a"}, {"key": "b"}],
        "bucketVersion": bucket_version,
        "minBucketVersion": min_bucket_version,
        "fallbackAttribute": "device",
    }
    return compile_payload({"features": {"f": {"defaultValue": "none", "rules": [rule]}}})


UNITS = [{"id": f"u{i}"} for i in range(300)]


def test_units_keep_their_variation_when_weights_change() -> None:
    service = InMemoryStickyBucketService()
    first = _payload([0.5, 0.5])
    before = [
        first.evaluate("f", unit, sticky_buckets=first.load_sticky_buckets(service, unit)).value
        for unit in UNITS
    ]
    second = _payload([0.0, 1.0])  # hashing alone would put everyone in "b"
    after = [
        second.evaluate("f", unit, sticky_buckets=second.load_sticky_buckets(service, unit)) for unit in UNITS
    ]
    assert [result.value for result in after] == before
    assert "a" in before
    assert all(result.sticky_bucket_used for result in after)
    stateless = [second.evaluate("f", unit).value for unit in UNITS]
    assert set(stateless) == {"b"}


def test_a_new_bucket_version_reassigns_and_min_version_blocks_old_units() -> None:
    service = InMemoryStickyBucketService()
    first = _payload([0.5, 0.5])
    for unit in UNITS:
        first.evaluate("f", unit, sticky_buckets=first.load_sticky_buckets(service, unit))
    bumped = _payload([0.0, 1.0], bucket_version=1)
    values = {
        bumped.evaluate("f", unit, sticky_buckets=bumped.load_sticky_buckets(service, unit)).value
        for unit in UNITS
    }
    assert values == {"b"}
    blocked = _payload([0.0, 1.0], bucket_version=2, min_bucket_version=2)
    results = [
        blocked.evaluate("f", unit, sticky_buckets=blocked.load_sticky_buckets(service, unit))
        for unit in UNITS
    ]
    assert all(r.source == "defaultValue" and not r.in_experiment for r in results)
    newcomer = {"id": "someone-new"}
    fresh = blocked.evaluate("f", newcomer, sticky_buckets=blocked.load_sticky_buckets(service, newcomer))
    assert fresh.value == "b" and fresh.in_experiment


def test_fallback_attribute_is_used_only_with_sticky_bucketing() -> None:
    payload = _payload([0.5, 0.5])
    anonymous = {"device": "d-1"}
    assert payload.evaluate("f", anonymous).in_experiment is False
    sticky = StickyBuckets()
    result = payload.evaluate("f", anonymous, sticky_buckets=sticky)
    assert result.in_experiment and result.hash_attribute == "device"
    assert sticky.changed == {"device||d-1"}
    assert sticky.docs["device||d-1"]["assignments"] == {"exp__0": result.variation_key}


def test_client_sent_documents_round_trip_and_bad_ones_are_ignored() -> None:
    payload = _payload([0.5, 0.5])
    unit = {"id": "u7"}
    forced_to = "b" if payload.evaluate("f", unit).value == "a" else "a"
    docs = [
        {"attributeName": "id", "attributeValue": "u7", "assignments": {"exp__0": forced_to}},
        {"attributeName": "id", "assignments": {"exp__0": "a"}},
        "nonsense",
    ]
    sticky = StickyBuckets.from_list(docs)
    result = payload.evaluate("f", unit, sticky_buckets=sticky)
    assert result.value == forced_to and result.sticky_bucket_used
    assert sticky.changed == set()  # nothing new to store


def test_in_memory_service_evicts_least_recently_used() -> None:
    service = InMemoryStickyBucketService(max_docs=2)
    for name in ("a", "b"):
        doc = {"attributeName": "id", "attributeValue": name, "assignments": {"e__0": "0"}}
        service.save_assignments(doc)
    assert service.get_assignments("id", "a") is not None  # "a" is now the most recent
    service.save_assignments({"attributeName": "id", "attributeValue": "c", "assignments": {"e__0": "1"}})
    assert len(service) == 2
    assert service.get_assignments("id", "b") is None
    assert service.get_assignments("id", "a") is not None
    with pytest.raises(ValueError):
        InMemoryStickyBucketService(max_docs=0)
