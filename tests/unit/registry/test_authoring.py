"""YAML experiments and GrowthBook payloads → registry entries → payload the engine assigns with."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from assignment import compile_payload
from assignment.authoring import (
    load_payload_file,
    load_registry_file,
    parse_registry_document,
    parse_registry_text,
)
from schemas import ExperimentStatus
from xpcore.errors import ValidationError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "experiments.yaml"


def one(**changes: Any) -> dict[str, Any]:
    """A valid single-experiment document with ``changes`` merged into the experiment."""
    spec: dict[str, Any] = {
        "key": "checkout",
        "status": "running",
        "variations": [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}],
    }
    spec.update(changes)
    return {"experiments": [spec]}


def test_example_file_compiles_and_validates() -> None:
    authored = load_registry_file(EXAMPLE)
    keys = [e.key for e in authored.experiments]
    assert keys == ["checkout-button", "pricing-page-annual-first", "search-ranking-v2"]
    assert [f.key for f in authored.features] == [
        "checkout-button-color",
        "pricing-page-layout",
        "search-ranking-v2",
    ]
    rule = authored.experiments[0].definition
    assert rule["hashVersion"] == 2 and rule["seed"] == "checkout-button" and rule["hashAttribute"] == "id"
    assert rule["weights"] == [0.34, 0.33, 0.33]
    assert [m["key"] for m in rule["meta"]] == ["blue", "green", "orange"]
    assert authored.features[0].definition["defaultValue"] == "#1f6feb"  # the control's value
    assert authored.experiments[2].definition["namespace"] == ["search", 0.0, 0.5]


def test_weights_are_respected_by_the_engine() -> None:
    payload = load_payload_file(EXAMPLE)
    compiled = compile_payload(payload)
    units = [{"id": f"user-{i}"} for i in range(30_000)]
    results = compiled.evaluate_many("checkout-button-color", units)
    assert all(r.in_experiment and r.experiment_key == "checkout-button" for r in results)
    counts = Counter(r.variation_id for r in results)
    for variation, weight in enumerate([0.34, 0.33, 0.33]):
        assert abs(counts[variation] / len(units) - weight) < 0.015
    assert {r.value for r in results} == {"#1f6feb", "#2da44e", "#fb8500"}


def test_targeting_and_coverage_are_respected_by_the_engine() -> None:
    compiled = compile_payload(load_payload_file(EXAMPLE))
    us = compiled.evaluate_many(
        "pricing-page-layout", [{"id": f"u{i}", "country": "US"} for i in range(20_000)]
    )
    share = sum(r.in_experiment for r in us) / len(us)
    assert abs(share - 0.5) < 0.02  # coverage 0.5
    outside = [r for r in us if not r.in_experiment]
    assert all(r.value == {"order": ["monthly", "annual"]} for r in outside)  # default = control value
    fr = compiled.evaluate_many("pricing-page-layout", [{"id": f"u{i}", "country": "FR"} for i in range(500)])
    assert not any(r.in_experiment for r in fr)
    bots = compiled.evaluate_many(
        "pricing-page-layout", [{"id": f"u{i}", "country": "US", "browser": "bot"} for i in range(500)]
    )
    assert not any(r.in_experiment for r in bots)


def test_namespace_is_respected_by_the_engine() -> None:
    compiled = compile_payload(load_payload_file(EXAMPLE))
    results = compiled.evaluate_many("search-ranking-v2", [{"id": f"u{i}"} for i in range(20_000)])
    share = sum(r.in_experiment for r in results) / len(results)
    assert abs(share - 0.5) < 0.02


def test_draft_experiment_is_stored_but_not_served() -> None:
    authored = parse_registry_document(one(status="draft"), "x.yaml")
    assert authored.experiments[0].status is ExperimentStatus.DRAFT
    payload = authored.snapshot().payload()
    assert payload["features"]["checkout"]["rules"] == []
    assert compile_payload(payload).evaluate("checkout", {"id": "u1"}).value == "blue"


def test_defaults_and_metadata() -> None:
    doc = one(
        feature="button",
        owner="growth",
        hypothesis="green sells",
        start="2026-12-01T09:00:00+01:00",
        metrics={"primary": "conversion", "guardrails": ["pageviews"]},
        variations=["blue", "green", "red"],
    )
    entry = parse_registry_document(doc, "x.yaml").experiments[0]
    assert entry.definition["weights"] == pytest.approx([1 / 3] * 3)
    assert entry.definition["variations"] == ["blue", "green", "red"]
    assert entry.metadata == {
        "feature": "button",
        "owner": "growth",
        "hypothesis": "green sells",
        "start": "2026-12-01T08:00:00Z",
        "metrics": {"primary": ["conversion"], "guardrails": ["pageviews"]},
    }


def test_user_defined_metrics_are_stored_with_the_experiments_that_use_them() -> None:
    authored = load_registry_file(EXAMPLE)
    stored = {m["name"] for m in authored.experiments[0].metadata["metric_definitions"]}
    assert stored == {"add_to_cart", "average_order_value", "orders", "refund_rate"}  # ratio parts too
    assert "metric_definitions" not in authored.experiments[1].metadata  # defaults only


def test_growthbook_payload_is_accepted_as_is(tmp_path: Path) -> None:
    payload: dict[str, Any] = {
        "features": {
            "banner": {
                "defaultValue": "off",
                "rules": [
                    {"id": "qa", "condition": {"id": {"$inGroup": "staff"}}, "force": "on"},
                    {
                        "key": "banner-exp",
                        "variations": ["off", "on"],
                        "weights": [0.5, 0.5],
                        "hashVersion": 2,
                    },
                ],
            },
            "plain": {"defaultValue": 3},
        },
        "savedGroups": {"staff": ["s1"], "unused": ["x"]},
    }
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    authored = load_registry_file(path)
    assert [e.key for e in authored.experiments] == ["banner-exp"]
    assert authored.experiments[0].status is ExperimentStatus.RUNNING
    assert authored.experiments[0].metadata["feature"] == "banner"
    served = authored.snapshot().payload()
    assert served["features"]["banner"] == payload["features"]["banner"]
    assert served["features"]["plain"] == {"defaultValue": 3, "rules": []}
    assert served["savedGroups"] == {"staff": ["s1"]}
    spec = authored.snapshot().experiments["banner-exp"]
    assert [v.key for v in spec.variations] == ["0", "1"]
    yaml_path = tmp_path / "payload.yaml"
    yaml_path.write_text(yaml.safe_dump(payload))
    assert load_registry_file(yaml_path).snapshot().payload() == served


INVALID: list[tuple[dict[str, Any] | str, str]] = [
    (
        one(variations=[{"key": "a", "weight": 1.5}, {"key": "b", "weight": -0.5}]),
        "x.yaml: experiment 'checkout': variations[1].weight: must be ≥ 0",
    ),
    (
        one(variations=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.4}]),
        "x.yaml: experiment 'checkout': variations: weights must sum to 1 (they sum to 0.9)",
    ),
    (
        one(variations=[{"key": "a"}]),
        "x.yaml: experiment 'checkout': variations: needs at least 2 variations",
    ),
    (
        one(variations=[{"key": "a"}, {"key": "a"}]),
        "x.yaml: experiment 'checkout': variations[1].key: duplicate variation key 'a'",
    ),
    (
        one(variations=[{"key": "a", "weight": 0.5}, {"key": "b"}]),
        "x.yaml: experiment 'checkout': variations[1].weight: give every variation a weight, or none",
    ),
    (one(coverage=1.2), "x.yaml: experiment 'checkout': coverage: must be a number in [0, 1]"),
    (one(status="paused"), "x.yaml: experiment 'checkout': status: must be draft, running or stopped"),
    (one(namespace=["ns", 0.6, 0.2]), "x.yaml: experiment 'checkout': namespace: needs 0 ≤ start < end ≤ 1"),
    (one(condition=["US"]), "x.yaml: experiment 'checkout': condition: must be a mapping"),
    (
        one(hash_attribute=""),
        "x.yaml: experiment 'checkout': hash_attribute: must be a non-empty attribute name",
    ),
    (one(start="2026-12-01T00:00:00"), "x.yaml: experiment 'checkout': start: needs a time zone"),
    (
        one(start="2026-12-02T00:00:00Z", stop="2026-12-01T00:00:00Z"),
        "x.yaml: experiment 'checkout': stop: must be after start",
    ),
    (one(colour="red"), "x.yaml: experiment 'checkout': colour: unknown field"),
    (one(metrics={"primary": ["nope"]}), "x.yaml: experiment 'checkout': metrics: unknown metric 'nope'"),
    (
        one(metrics={"tertiary": ["conversion"]}),
        "x.yaml: experiment 'checkout': metrics.tertiary: unknown role",
    ),
    (one(key="has space"), "x.yaml: experiments[0]: key: must be letters"),
    (
        {"experiments": [one()["experiments"][0], one()["experiments"][0]]},
        "x.yaml: experiment 'checkout': key: defined twice in this file",
    ),
    (
        {**one(), "metrics": [{"name": "m", "event": "e", "aggregation": "median"}]},
        "x.yaml: metrics[0] 'm': aggregation: must be one of count, sum, unique, binary",
    ),
    (
        {**one(), "metrics": [{"name": "r", "numerator": "revenue", "denominator": "nope"}]},
        "x.yaml: metric 'r': unknown metric 'nope'",
    ),
    ({"experiments": []}, "x.yaml: experiments: must be a non-empty list"),
    ({"experiment": []}, "x.yaml: experiment: unknown top-level field"),
    ({"features": {}, "experiments": []}, "x.yaml: use either `experiments:`"),
    (
        one(condition={"id": {"$inGroup": "vip"}}),
        "x.yaml: experiment 'checkout': condition: saved group 'vip'",
    ),
    ("experiments: [\n", "x.yaml: invalid YAML"),
]


@pytest.mark.parametrize(("document", "message"), INVALID, ids=[m for _, m in INVALID])
def test_validation_errors_name_file_experiment_and_field(
    document: dict[str, Any] | str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        if isinstance(document, str):
            parse_registry_text(document, "x.yaml")
        else:
            parse_registry_document(document, "x.yaml")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"missing\.yaml: cannot read"):
        load_registry_file(tmp_path / "missing.yaml")
