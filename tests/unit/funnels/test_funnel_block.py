"""The ``funnel:`` block's rules are declared once (assignment/funnel_block.py): the YAML registry and
``xp funnel`` (make_funnel) refuse the same values in the same words; the stream knows the steps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from assignment.funnel_block import FUNNEL_PROBLEMS, Funnel, funnel_from_metadata, make_funnel
from assignment.metrics_catalog import DEFAULT_WINDOW_HOURS, known_event_names
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from xpcore.errors import ValidationError


def document(funnel: Any) -> dict[str, Any]:
    return {"experiments": [{"key": "checkout", "variations": ["a", "b"], "funnel": funnel}]}


def stored(funnel: Any) -> Any:
    return parse_registry_document(document(funnel), "x.yaml").experiments[0].metadata["funnel"]


def test_a_declared_funnel_is_stored_and_read_back() -> None:
    block = {"steps": ["exposure", "pageview", "add_to_cart", "purchase"], "window": "1d", "ordered": False}
    assert stored(block) == {
        "steps": ["pageview", "add_to_cart", "purchase"],
        "window_hours": 24.0,
        "ordered": False,
    }
    assert funnel_from_metadata({"funnel": stored(block)}) == Funnel(
        ("pageview", "add_to_cart", "purchase"), 24.0, False
    )
    assert stored({"steps": ["purchase"]})["window_hours"] == DEFAULT_WINDOW_HOURS
    assert funnel_from_metadata({}) is None and funnel_from_metadata(None) is None


REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("steps", {"steps": []}),
    ("steps", {"steps": ["exposure"]}),
    ("steps", {"steps": ["a", "a"]}),
    ("steps", {"steps": ["a", " "]}),
    ("steps", {"steps": "pageview"}),
    ("steps", {"steps": [f"e{i}" for i in range(21)]}),
    ("window", {"steps": ["a"], "window": "soon"}),
    ("window", {"steps": ["a"], "window": 0}),
    ("window", {"steps": ["a"], "window": True}),
    ("ordered", {"steps": ["a"], "ordered": "yes"}),
]


@pytest.mark.parametrize(("field", "block"), REFUSED)
def test_yaml_and_make_funnel_refuse_the_same_values_in_the_same_words(
    field: str, block: dict[str, Any]
) -> None:
    words = FUNNEL_PROBLEMS[field]
    with pytest.raises(ValidationError) as from_yaml:
        parse_registry_document(document(block), "x.yaml")
    assert str(from_yaml.value) == f"x.yaml: experiment 'checkout': funnel.{field}: {words}"
    with pytest.raises(ValidationError) as from_flags:
        make_funnel(block["steps"], block.get("window", 1), block.get("ordered", True))
    assert str(from_flags.value) == f"funnel: {field}: {words}"


def test_unknown_fields_and_a_non_mapping_are_one_line() -> None:
    for block, words in (
        ({"steps": ["a"], "colour": "red"}, "funnel.colour: unknown field (expected steps, window, ordered)"),
        (["a"], "funnel: must be a mapping with steps, window, ordered"),
    ):
        with pytest.raises(ValidationError) as error:
            parse_registry_document(document(block), "x.yaml")
        assert str(error.value) == f"x.yaml: experiment 'checkout': {words}"
        assert "\n" not in str(error.value)


def test_exposure_is_only_the_implicit_first_step() -> None:
    with pytest.raises(ValidationError, match="'exposure' may only be the first step"):
        make_funnel(["pageview", "exposure"])


def test_the_stream_knows_every_declared_step() -> None:
    registry = parse_registry_document(
        document({"steps": ["pageview", "add_to_cart", "checkout_started"]}), "x.yaml"
    )
    snapshot = RegistrySnapshot.from_records(
        plan_changes(RegistrySnapshot(), registry, actor="t", now=datetime(2026, 12, 1, tzinfo=UTC))
    )
    assert {"add_to_cart", "checkout_started"} <= known_event_names(snapshot)
    assert "add_to_cart" not in known_event_names(None)
