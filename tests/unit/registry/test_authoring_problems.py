"""A pydantic error about an experiments YAML → one line naming file, experiment and field (decision 0052)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from xpcore.errors import ValidationError


def experiment(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "key": "checkout",
        "status": "running",
        "variations": [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}],
    }
    spec.update(changes)
    return spec


def problem(document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_registry_document(document, "x.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("document", "told"),
    [
        (  # the key first: it names the experiment
            {"experiments": [experiment(key="a b", coverage=2, colour="red")]},
            "x.yaml: experiments[0]: key: must be letters",
        ),
        (  # an experiment's unknown field before its other fields
            {"experiments": [experiment(coverage=2, colour="red")]},
            "x.yaml: experiment 'checkout': colour: unknown field",
        ),
        (  # a variation's unknown field before its other fields, fields in declared order
            {"experiments": [experiment(variations=[{"key": "a", "weight": -1, "x": 1}, "b"], coverage=2)]},
            "x.yaml: experiment 'checkout': variations[0].x: unknown field",
        ),
        (  # fields in the order the model declares them (variations before coverage)
            {"experiments": [experiment(variations=["a"], coverage=2)]},
            "x.yaml: experiment 'checkout': variations: needs at least 2 variations",
        ),
        (  # experiments in file order
            {"experiments": [experiment(key="one", coverage=2), experiment(key="two", status="x")]},
            "x.yaml: experiment 'one': coverage:",
        ),
        (  # the file's top level before its experiments
            {"experiments": [experiment(coverage=2)], "colour": 1},
            "x.yaml: colour: unknown top-level field",
        ),
        (  # the file's metrics before its experiments
            {"experiments": [experiment(coverage=2)], "metrics": [{"name": "m"}]},
            "x.yaml: metrics[0] 'm'",
        ),
        (  # a problem inside a value names where inside it is
            {"experiments": [experiment(tags={"a": [1, float("nan")]})]},
            "x.yaml: experiment 'checkout': tags.a[1]: must be a finite number",
        ),
        (  # a problem of a metric role names the role, not the element
            {"experiments": [experiment(metrics={"primary": ["conversion", ""]})]},
            "x.yaml: experiment 'checkout': metrics.primary: must be a list of metric names",
        ),
        (
            {"experiments": [experiment(analysis={"alpha": 0.1, "colour": 1})]},
            "x.yaml: experiment 'checkout': analysis.colour: unknown field (expected method, alpha, cuped",
        ),
        (
            {"experiments": [experiment(namespace={"name": "", "start": 0, "end": 1})]},
            "x.yaml: experiment 'checkout': namespace: name must be a non-empty string",
        ),
        (
            {"experiments": [experiment(start="yesterday")]},
            "x.yaml: experiment 'checkout': start: 'yesterday' is not an ISO 8601 time",
        ),
        ({"experiments": [7]}, "x.yaml: experiments[0]: must be a mapping with key, variations"),
        (
            {"experiments": [experiment()], "saved_groups": {"g": 1}},
            "x.yaml: saved_groups: must map group ids",
        ),
    ],
)
def test_the_first_problem_is_told_in_words(document: dict[str, Any], told: str) -> None:
    message = problem(document)
    assert message.startswith(told), message


BAD_VALUES: list[Any] = [None, "", "x y", -1, 2.5, True, [], {}, float("nan"), object()]
FIELDS = ["key", "status", "variations", "coverage", "hash_attribute", "seed", "condition", "namespace"]
FIELDS += ["start", "stop", "feature", "name", "metrics", "analysis", "default_value", "tags"]


@pytest.mark.parametrize(("field", "value"), list(itertools.product(FIELDS, BAD_VALUES)))
def test_never_a_pydantic_dump(field: str, value: Any) -> None:
    try:
        parse_registry_document({"experiments": [experiment(**{field: value})]}, "x.yaml")
    except ValidationError as error:
        message = str(error)
        assert message.startswith(("x.yaml: experiment 'checkout': ", "x.yaml: experiments[0]: key: "))
        assert "\n" not in message
        assert "Input should" not in message and "pydantic" not in message and "Value error" not in message


@pytest.mark.parametrize(
    ("decision", "status", "told"),
    [
        ({"outcome": "win"}, "stopped", "decision.outcome: must be ship, rollback or inconclusive"),
        ({"outcome": "ship"}, "running", "decision: a decision needs status: stopped"),
        (
            {"outcome": "ship", "variation": "blue"},
            "stopped",
            "decision.variation: must be a treatment variation",
        ),
        ({"outcome": "ship", "colour": "x"}, "stopped", "decision.colour: unknown field (expected outcome"),
        ("ship", "stopped", "decision: must be a mapping with outcome, variation, note"),
    ],
)
def test_decision_problems(decision: Any, status: str, told: str) -> None:
    assert told in problem({"experiments": [experiment(status=status, decision=decision)]})


def test_a_decision_is_stored_in_the_metadata() -> None:
    document = {
        "experiments": [experiment(status="stopped", decision={"outcome": "ship", "variation": "green"})]
    }
    (entry,) = parse_registry_document(document, "x.yaml").experiments
    assert entry.metadata["decision"] == {"outcome": "ship", "variation": "green"}
