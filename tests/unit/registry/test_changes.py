"""plan_changes (diff a file against the registry, versions, transitions) and override records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import override_change, plan_changes, remove_override_change, summarize
from schemas import RegistryChange
from tests.unit.registry.helpers import T0
from xpcore.errors import ValidationError


def doc(status: str = "running", weights: tuple[float, float] = (0.5, 0.5), **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "key": "checkout",
        "status": status,
        "variations": [{"key": "blue", "weight": weights[0]}, {"key": "green", "weight": weights[1]}],
        **changes,
    }
    return {"experiments": [spec]}


def applied(document: dict[str, Any], snapshot: RegistrySnapshot | None = None) -> RegistrySnapshot:
    snapshot = snapshot or RegistrySnapshot()
    records = plan_changes(snapshot, parse_registry_document(document, "x.yaml"), actor="alice", now=T0)
    for record in records:
        snapshot = snapshot.apply(record)
    return snapshot


def test_new_file_creates_experiment_then_feature() -> None:
    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(doc(), "x.yaml"), actor="alice", now=T0
    )
    assert [(r.change, r.key) for r in records] == [
        (RegistryChange.CREATED, "experiment:checkout"),
        (RegistryChange.CREATED, "feature:checkout"),
    ]
    assert all(r.changed_by == "alice" and r.changed_at == T0 for r in records)
    assert len({r.record_id for r in records}) == 2


def test_unchanged_file_plans_nothing() -> None:
    snapshot = applied(doc())
    assert plan_changes(snapshot, parse_registry_document(doc(), "x.yaml"), actor="bob", now=T0) == []


def test_change_is_an_update_with_the_next_version() -> None:
    snapshot = applied(doc())
    records = plan_changes(
        snapshot, parse_registry_document(doc(coverage=0.5), "x.yaml"), actor="bob", now=T0
    )
    assert [(r.change, r.key, getattr(r.payload, "version", None)) for r in records] == [
        (RegistryChange.UPDATED, "experiment:checkout", 2),
        (RegistryChange.UPDATED, "feature:checkout", 2),
    ]
    assert summarize(snapshot, records[0]).detail == "definition.coverage"


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            doc("running"),
            doc("draft"),
            "x.yaml: experiment 'checkout': status: cannot go from running to draft",
        ),
        (
            doc("stopped"),
            doc("running"),
            "x.yaml: experiment 'checkout': status: cannot go from stopped to running",
        ),
        (
            doc("running"),
            doc("running", (0.4, 0.6)),
            "x.yaml: experiment 'checkout': weights: cannot change once the experiment has run",
        ),
        (
            doc("running"),
            doc("running", hash_attribute="device_id"),
            "x.yaml: experiment 'checkout': hash_attribute: cannot change",
        ),
        (doc("stopped"), doc("stopped", seed="other"), "x.yaml: experiment 'checkout': seed: cannot change"),
    ],
)
def test_transitions_that_are_refused(before: dict[str, Any], after: dict[str, Any], message: str) -> None:
    snapshot = applied(before)
    with pytest.raises(ValidationError) as caught:
        plan_changes(snapshot, parse_registry_document(after, "x.yaml"), actor="bob", now=T0)
    assert str(caught.value).startswith(message), str(caught.value)


def test_transitions_that_are_allowed() -> None:
    snapshot = applied(doc("draft"))
    snapshot = applied(doc("draft", (0.3, 0.7)), snapshot)  # drafts may change anything
    snapshot = applied(doc("running", (0.3, 0.7), coverage=0.2), snapshot)
    snapshot = applied(doc("running", (0.3, 0.7), coverage=0.8, condition={"country": "US"}), snapshot)
    snapshot = applied(doc("stopped", (0.3, 0.7), coverage=0.8), snapshot)
    spec = snapshot.experiments["checkout"]
    assert (spec.status, spec.coverage, spec.version) == ("stopped", 0.8, 5)


def test_prune_deletes_what_the_file_no_longer_declares() -> None:
    both = {"experiments": [doc()["experiments"][0], {**doc()["experiments"][0], "key": "other"}]}
    snapshot = applied(both)
    authored = parse_registry_document(doc(), "x.yaml")
    assert plan_changes(snapshot, authored, actor="a", now=T0) == []
    records = plan_changes(snapshot, authored, actor="a", now=T0, prune=True)
    assert [(r.change, r.key) for r in records] == [
        (RegistryChange.DELETED, "experiment:other"),
        (RegistryChange.DELETED, "feature:other"),
    ]
    after = snapshot
    for record in records:
        after = after.apply(record)
    assert set(after.experiments) == {"checkout"}
    recreated = applied(both, after)  # versions keep growing after a delete
    assert recreated.experiments["other"].version == 3


def test_override_by_key_or_index_and_its_removal() -> None:
    snapshot = applied(doc())
    by_key = override_change(snapshot, "checkout", "u1", "green", actor="qa", now=T0, reason="QA")
    by_index = override_change(snapshot, "checkout", "u1", "1", actor="qa", now=T0)
    assert by_key.payload is not None and by_index.payload is not None
    assert (by_key.payload.variation_id, by_key.payload.variation_key) == (1, "green")  # type: ignore[union-attr]
    assert by_index.payload.variation_id == 1  # type: ignore[union-attr]
    assert by_key.change is RegistryChange.CREATED
    after = snapshot.apply(by_key)
    assert after.override_for("checkout", "u1", T0) is not None
    again = override_change(after, "checkout", "u1", 0, actor="qa", now=T0 + timedelta(seconds=1))
    assert again.change is RegistryChange.UPDATED
    removal = remove_override_change(after, "checkout", "u1", actor="qa", now=T0 + timedelta(seconds=2))
    assert after.apply(removal).override_for("checkout", "u1", T0) is None


@pytest.mark.parametrize(
    ("experiment", "variation", "message"),
    [
        ("nope", "blue", "experiment 'nope': not in the registry"),
        (
            "checkout",
            "purple",
            "experiment 'checkout': variation: 'purple' is not one of its variations (0=blue, 1=green)",
        ),
        ("checkout", "2", "experiment 'checkout': variation: '2' is not one of its variations"),
    ],
)
def test_override_validation(experiment: str, variation: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        override_change(applied(doc()), experiment, "u1", variation, actor="qa", now=T0)
    assert str(caught.value).startswith(message)


def test_override_expiry_must_be_in_the_future_and_removal_needs_an_override() -> None:
    snapshot = applied(doc())
    with pytest.raises(ValidationError, match="expires: must be in the future"):
        override_change(snapshot, "checkout", "u1", "blue", actor="qa", now=T0, expires_at=T0)
    with pytest.raises(ValidationError, match="unit 'u9' has no override"):
        remove_override_change(snapshot, "checkout", "u9", actor="qa", now=T0)


def test_an_override_of_a_targeted_experiment_comes_with_a_note_that_tells_the_truth() -> None:
    from assignment import compile_payload
    from assignment.registry_changes import override_notes

    assert override_notes(applied(doc()), "checkout") == []  # no targeting: nothing to say
    snapshot = applied(doc(condition={"country": "US"}, coverage=0.01))
    (note,) = override_notes(snapshot, "checkout")
    assert '{"country": "US"}' in note and "does nothing" in note
    # what the note says: the rule's condition gates the forced variation; coverage does not
    feature = next(iter(snapshot.features))
    compiled = compile_payload(snapshot.payload())
    forced = {"checkout": 1}
    inside = compiled.evaluate(feature, {"id": "u1", "country": "US"}, forced_variations=forced)
    outside = compiled.evaluate(feature, {"id": "u1", "country": "FR"}, forced_variations=forced)
    assert (inside.in_experiment, inside.variation_id) == (True, 1)
    assert outside.in_experiment is False
