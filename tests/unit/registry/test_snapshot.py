"""RegistrySnapshot: the fold of registry records (created/updated/deleted, stale versions) and payload()."""

from __future__ import annotations

from datetime import timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from assignment import compile_payload
from assignment.registry import RegistrySnapshot
from schemas import (
    ExperimentStatus,
    FeatureStatus,
    RegistryChange,
    RegistryKind,
    RegistryPayload,
    RegistryRecord,
)
from tests.unit.registry.helpers import T0, experiment, feature, override, record


def test_created_experiment_and_feature_are_served() -> None:
    snapshot = RegistrySnapshot.from_records([record(experiment()), record(feature())])
    assert set(snapshot.experiments) == {"exp"}
    spec = snapshot.experiments["exp"]
    assert spec.feature_key == "feat"
    assert [v.key for v in spec.variations] == ["k0", "k1"]
    assert spec.weights == (0.5, 0.5)
    assert snapshot.known_variations() == {"exp": frozenset({0, 1})}
    rules = snapshot.payload()["features"]["feat"]["rules"]
    assert [r["key"] for r in rules] == ["exp"]
    assert snapshot.revision == 2


def test_update_replaces_and_stale_version_is_a_no_op() -> None:
    snapshot = RegistrySnapshot.from_records([record(experiment(version=1)), record(feature())])
    updated = snapshot.apply(record(experiment(version=2, coverage=0.3), RegistryChange.UPDATED, seconds=1))
    assert updated.experiments["exp"].coverage == 0.3
    assert updated.experiments["exp"].version == 2
    stale = record(experiment(version=2, coverage=0.9), RegistryChange.UPDATED, seconds=2)
    assert updated.apply(stale) is updated
    older = record(experiment(version=1, coverage=0.1), RegistryChange.UPDATED, seconds=3)
    assert updated.apply(older) is updated


def test_delete_removes_and_remembers_the_version() -> None:
    snapshot = RegistrySnapshot.from_records([record(experiment(version=1)), record(feature())])
    deleted = snapshot.apply(record(experiment(version=2), RegistryChange.DELETED, seconds=1))
    assert "exp" not in deleted.experiments
    assert deleted.versions["experiment:exp"] == 2
    assert deleted.payload()["features"]["feat"]["rules"] == []  # rule of an unknown experiment: removed
    assert deleted.apply(record(experiment(version=1), seconds=2)) is deleted  # replayed old create
    recreated = deleted.apply(record(experiment(version=3), seconds=3))
    assert recreated.experiments["exp"].version == 3


def test_delete_without_payload_removes_the_entry() -> None:
    snapshot = RegistrySnapshot.from_records([record(experiment()), record(feature())])
    tombstone = record(None, RegistryChange.DELETED, key="feature:feat", kind=RegistryKind.FEATURE, seconds=1)
    after = snapshot.apply(tombstone)
    assert "feat" not in after.features
    assert after.payload()["features"] == {}


def test_draft_and_stopped_experiments_are_not_served_and_units_get_the_default() -> None:
    for status in (ExperimentStatus.DRAFT, ExperimentStatus.STOPPED):
        snapshot = RegistrySnapshot.from_records([record(experiment(status=status)), record(feature())])
        payload = snapshot.payload()
        assert payload["features"]["feat"]["rules"] == []
        result = compile_payload(payload).evaluate("feat", {"id": "u1"})
        assert (result.value, result.source, result.in_experiment) == ("v0", "defaultValue", False)
        assert snapshot.running_experiments() == []


def test_archived_feature_is_not_served() -> None:
    snapshot = RegistrySnapshot.from_records(
        [record(experiment()), record(feature(status=FeatureStatus.ARCHIVED))]
    )
    assert snapshot.payload()["features"] == {}
    assert "feat" in snapshot.features


def test_experiment_definition_is_the_rule_served() -> None:
    stale_copy = {**experiment().definition, "coverage": 1.0}
    snapshot = RegistrySnapshot.from_records(
        [
            record(experiment(coverage=0.25)),
            record(feature(rules=[{"force": "x", "coverage": 0.1}, stale_copy])),
        ]
    )
    rules = snapshot.payload()["features"]["feat"]["rules"]
    assert rules[0] == {"force": "x", "coverage": 0.1}  # non-experiment rules are kept as they are
    assert rules[1]["coverage"] == 0.25


def test_schedule_applies_when_a_time_is_given() -> None:
    defn = experiment(start="2026-11-10T00:00:00Z", stop="2026-11-20T00:00:00Z")
    snapshot = RegistrySnapshot.from_records([record(defn), record(feature())])
    assert snapshot.payload()["features"]["feat"]["rules"]  # no time: status decides
    assert snapshot.payload(at=T0)["features"]["feat"]["rules"] == []
    assert snapshot.payload(at=T0 + timedelta(days=12))["features"]["feat"]["rules"]
    assert snapshot.payload(at=T0 + timedelta(days=18, hours=23, minutes=59))["features"]["feat"]["rules"]
    assert snapshot.payload(at=T0 + timedelta(days=19))["features"]["feat"]["rules"] == []


def test_overrides_are_kept_out_of_the_payload_and_expire() -> None:
    expires = T0 + timedelta(days=1)
    snapshot = RegistrySnapshot.from_records(
        [record(experiment()), record(feature()), record(override(expires_at=expires), seconds=5)]
    )
    assert "u1" not in str(snapshot.payload())
    found = snapshot.override_for("exp", "u1", T0)
    assert found is not None and found.variation_id == 1
    assert snapshot.override_for("exp", "u1", expires) is None
    assert snapshot.override_for("exp", "u2", T0) is None
    removed = snapshot.apply(record(override(), RegistryChange.DELETED, seconds=6))
    assert removed.override_for("exp", "u1", T0) is None
    # an override record older than the last applied one (by changed_at) is stale
    assert removed.apply(record(override(), RegistryChange.CREATED, seconds=5)) is removed


def test_saved_groups_carried_by_features_reach_the_payload() -> None:
    rule = {"force": "beta", "condition": {"id": {"$inGroup": "beta"}}}
    defn = feature(key="flag", rules=[rule], default="off")
    carried = type(defn)(
        key="flag",
        version=1,
        status=defn.status,
        definition={**defn.definition, "savedGroups": {"beta": ["u1"]}},
    )
    snapshot = RegistrySnapshot().apply(record(carried))
    payload = snapshot.payload()
    assert payload["savedGroups"] == {"beta": ["u1"]}
    assert "savedGroups" not in payload["features"]["flag"]
    compiled = compile_payload(payload)
    assert compiled.evaluate("flag", {"id": "u1"}).value == "beta"
    assert compiled.evaluate("flag", {"id": "u2"}).value == "off"


# --- properties --------------------------------------------------------------------------------------


@st.composite
def record_streams(draw: st.DrawFn) -> list[RegistryRecord]:
    """Random changes to a few keys, each key's versions increasing (as publishers write them)."""
    records: list[RegistryRecord] = []
    versions: dict[str, int] = {}
    for step in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["experiment", "feature", "override"]))
        name = draw(st.sampled_from(["a", "b", "c"]))
        change = draw(st.sampled_from(list(RegistryChange)))
        version = versions.get(f"{kind}:{name}", 0) + draw(st.integers(1, 2))
        versions[f"{kind}:{name}"] = version
        status = draw(st.sampled_from(list(ExperimentStatus)))
        payload: RegistryPayload
        if kind == "experiment":
            payload = experiment(
                name, version, status, feature=name, coverage=draw(st.sampled_from([0.5, 1.0]))
            )
        elif kind == "feature":
            payload = feature(name, version, rules=[experiment(name).definition])
        else:
            payload = override(name, draw(st.sampled_from(["u1", "u2"])), draw(st.integers(0, 1)))
        records.append(record(payload, change, seconds=step))
    return records


@settings(max_examples=150, deadline=None)
@given(record_streams())
def test_folding_the_same_records_gives_the_same_snapshot(records: list[RegistryRecord]) -> None:
    assert RegistrySnapshot.from_records(records) == RegistrySnapshot.from_records(records)


@settings(max_examples=150, deadline=None)
@given(record_streams())
def test_replaying_records_is_a_no_op(records: list[RegistryRecord]) -> None:
    snapshot = RegistrySnapshot.from_records(records)
    for stale in records:
        assert snapshot.apply(stale) is snapshot
    assert RegistrySnapshot.from_records(records + records) == snapshot


@settings(max_examples=100, deadline=None)
@given(record_streams(), st.randoms(use_true_random=False))
def test_interleaving_of_keys_does_not_matter(records: list[RegistryRecord], random: Random) -> None:
    """Partitions keep each key's order but interleave keys arbitrarily; the fold must not care."""
    by_key: dict[str, list[RegistryRecord]] = {}
    for rec in records:
        by_key.setdefault(rec.key, []).append(rec)
    queues = list(by_key.values())
    shuffled = []
    while queues:
        queue = random.choice(queues)
        shuffled.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    assert RegistrySnapshot.from_records(shuffled) == RegistrySnapshot.from_records(records)
    assert (
        RegistrySnapshot.from_records(shuffled).payload() == RegistrySnapshot.from_records(records).payload()
    )


@settings(max_examples=150, deadline=None)
@given(record_streams(), st.integers(0, 25))
def test_batches_fold_like_single_records(records: list[RegistryRecord], cut: int) -> None:
    one_by_one = RegistrySnapshot()
    for rec in records:
        one_by_one = one_by_one.apply(rec)
    batched = RegistrySnapshot().apply_many(records[:cut]).apply_many(records[cut:])
    assert batched == one_by_one
    assert batched.revision == one_by_one.revision
