"""The registry on a real Kafka broker: apply → list → history, no-op re-apply, overrides and their
expiry, the follower, and the `xp experiments` commands end to end (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.authoring import load_registry_file
from assignment.registry_changes import override_change, plan_changes
from assignment.registry_topic import RegistryFollower, publish_changes, read_registry, registry_history
from schemas import RegistryChange
from tests.fixtures.kafka import KafkaBroker
from xpcore.config import KafkaSettings
from xpcore.errors import TransientError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "experiments.yaml"


def xp(settings: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": settings.topic_prefix,
        "USER": "ci-user",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_apply_list_history_and_unchanged_reapply(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    applied = ok_json(
        xp(kafka_settings, "experiments", "apply", str(EXAMPLE), "--actor", "alice", "--format", "json")
    )
    assert applied["published"] is True
    assert sorted((c["change"], c["key"]) for c in applied["changes"]) == sorted(
        [
            ("created", f"experiment:{k}")
            for k in ("checkout-button", "pricing-page-annual-first", "search-ranking-v2")
        ]
        + [
            ("created", f"feature:{k}")
            for k in ("checkout-button-color", "pricing-page-layout", "search-ranking-v2")
        ]
    )

    listed = ok_json(xp(kafka_settings, "experiments", "list", "--format", "json"))
    by_key = {row["key"]: row for row in listed}
    assert set(by_key) == {"checkout-button", "pricing-page-annual-first", "search-ranking-v2"}
    checkout = by_key["checkout-button"]
    assert checkout["variations"] == ["blue", "green", "orange"]
    assert checkout["weights"] == [0.34, 0.33, 0.33]
    assert (checkout["status"], checkout["version"], checkout["changed_by"]) == ("running", 1, "alice")
    assert by_key["pricing-page-annual-first"]["coverage"] == 0.5

    again = ok_json(xp(kafka_settings, "experiments", "apply", str(EXAMPLE), "--format", "json"))
    assert again == {"file": str(EXAMPLE), "dry_run": False, "published": False, "changes": []}

    changed = tmp_path / "experiments.yaml"
    changed.write_text(EXAMPLE.read_text().replace("coverage: 0.5", "coverage: 0.8"))
    dry = ok_json(xp(kafka_settings, "experiments", "apply", str(changed), "--dry-run", "--format", "json"))
    assert [(c["change"], c["key"], c["version"]) for c in dry["changes"]] == [
        ("updated", "experiment:pricing-page-annual-first", 2),
        ("updated", "feature:pricing-page-layout", 2),
    ]
    assert read_registry(kafka_settings).experiments["pricing-page-annual-first"].coverage == 0.5  # dry run
    result = xp(kafka_settings, "experiments", "apply", str(changed))  # table output, $USER as actor
    assert result.returncode == 0, result.stderr
    assert "updated" in result.stdout and "experiment:pricing-page-annual-first v2" in result.stdout

    history = ok_json(
        xp(kafka_settings, "experiments", "history", "pricing-page-annual-first", "--format", "json")
    )
    experiment_rows = [h for h in history if h["key"] == "experiment:pricing-page-annual-first"]
    assert [(h["change"], h["version"], h["changed_by"]) for h in experiment_rows] == [
        ("created", 1, "alice"),
        ("updated", 2, "ci-user"),
    ]
    assert experiment_rows[1]["payload"]["definition"]["coverage"] == 0.8

    table = xp(kafka_settings, "experiments", "list")
    assert table.returncode == 0 and "checkout-button" in table.stdout


def test_refused_transition_is_one_line_and_publishes_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    ok_json(xp(kafka_settings, "experiments", "apply", str(EXAMPLE), "--format", "json"))
    bad = tmp_path / "experiments.yaml"
    bad.write_text(
        EXAMPLE.read_text()
        .replace("weight: 0.34", "weight: 0.30")
        .replace("name: Green, weight: 0.33", "name: Green, weight: 0.37")
    )
    result = xp(kafka_settings, "experiments", "apply", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: experiments.yaml: experiment 'checkout-button': weights: cannot change once the experiment "
        "has run (it is running); create a new experiment key"
    )
    assert len(registry_history(kafka_settings, "checkout-button")) == 2  # experiment + feature, v1 only


def test_override_cli_snapshot_and_expiry(kafka_settings: KafkaSettings) -> None:
    authored = load_registry_file(EXAMPLE)
    now = datetime.now(UTC)
    publish_changes(kafka_settings, plan_changes(read_registry(kafka_settings), authored, actor="t", now=now))

    created = ok_json(
        xp(
            kafka_settings,
            "experiments",
            "override",
            "checkout-button",
            "qa-1",
            "green",
            "--expires",
            "7d",
            "--reason",
            "QA",
            "--format",
            "json",
        )
    )
    assert [(c["change"], c["key"]) for c in created["changes"]] == [
        ("created", "override:checkout-button:qa-1")
    ]
    bad = xp(kafka_settings, "experiments", "override", "checkout-button", "qa-1", "purple")
    assert bad.returncode == 2 and "'purple' is not one of its variations" in bad.stderr

    snapshot = read_registry(kafka_settings)
    found = snapshot.override_for("checkout-button", "qa-1", datetime.now(UTC))
    assert found is not None and (found.variation_id, found.variation_key, found.reason) == (1, "green", "QA")
    assert found.expires_at is not None and found.expires_at > datetime.now(UTC) + timedelta(days=6)
    assert "qa-1" not in json.dumps(snapshot.payload())

    # A short-lived override is honoured until it expires.
    short = override_change(
        snapshot,
        "checkout-button",
        "qa-2",
        2,
        actor="t",
        now=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(seconds=2),
    )
    publish_changes(kafka_settings, [short])
    snapshot = read_registry(kafka_settings)
    assert snapshot.override_for("checkout-button", "qa-2", datetime.now(UTC)) is not None
    assert snapshot.override_for("checkout-button", "qa-2", datetime.now(UTC) + timedelta(seconds=3)) is None

    removed = ok_json(
        xp(
            kafka_settings,
            "experiments",
            "override",
            "checkout-button",
            "qa-1",
            "--remove",
            "--format",
            "json",
        )
    )
    assert removed["changes"][0]["change"] == "deleted"
    assert read_registry(kafka_settings).override_for("checkout-button", "qa-1", datetime.now(UTC)) is None
    history = registry_history(kafka_settings, "override:checkout-button:qa-1")
    assert [r.change for r in history] == [RegistryChange.CREATED, RegistryChange.DELETED]
    assert history[1].payload is not None  # the removed override stays in the audit trail


def test_follower_sees_a_change_within_seconds(kafka_settings: KafkaSettings) -> None:
    changes: list[int] = []
    follower = RegistryFollower(kafka_settings, on_change=lambda s: changes.append(s.revision))
    try:
        assert follower.start() is True  # empty topic: loaded at once
        assert follower.snapshot.experiments == {}
        authored = load_registry_file(EXAMPLE)
        publish_changes(
            kafka_settings, plan_changes(follower.snapshot, authored, actor="t", now=datetime.now(UTC))
        )
        assert follower.wait_until(lambda s: len(s.experiments) == 3 and len(s.features) == 3, timeout=10)
        assert changes and changes[-1] == 6
        assert follower.snapshot.payload() == authored.snapshot().payload()
    finally:
        follower.stop()

    # A new follower loads the existing registry before start() returns.
    with RegistryFollower(kafka_settings) as second:
        assert second.loaded and len(second.snapshot.experiments) == 3


def test_read_registry_of_a_missing_topic_is_empty(
    kafka_broker: KafkaBroker, kafka_settings: KafkaSettings
) -> None:
    # Only a principal allowed to describe the topic learns that it does not exist (the admin here);
    # the broker tells the others TOPIC_AUTHORIZATION_FAILED, which is an error, never an empty registry.
    prefix = kafka_settings.topic_prefix + "nothing."
    missing = kafka_broker.settings(topic_prefix=prefix, role="admin")
    assert read_registry(missing).experiments == {}
    with pytest.raises(TransientError, match=r"not allowed to read .*TOPIC_AUTHORIZATION_FAILED"):
        read_registry(kafka_broker.settings(topic_prefix=prefix, role="reader"))


def test_a_concurrent_writer_that_loses_is_ignored_and_told(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from assignment.authoring import parse_registry_text
    from xpcore.errors import TransientError
    from xpstream.cli.experiments import _check_applied

    base = load_registry_file(EXAMPLE)
    publish_changes(
        kafka_settings, plan_changes(read_registry(kafka_settings), base, actor="t", now=datetime.now(UTC))
    )
    snapshot = read_registry(kafka_settings)
    text = EXAMPLE.read_text()
    first = parse_registry_text(text.replace("coverage: 0.5", "coverage: 0.6"), "a.yaml")
    second = parse_registry_text(text.replace("coverage: 0.5", "coverage: 0.7"), "b.yaml")
    now = datetime.now(UTC)
    winner = plan_changes(snapshot, first, actor="alice", now=now)  # both planned against version 1
    loser = plan_changes(snapshot, second, actor="bob", now=now)
    publish_changes(kafka_settings, winner)
    publish_changes(kafka_settings, loser)
    after = read_registry(kafka_settings)
    assert after.experiments["pricing-page-annual-first"].coverage == 0.6
    _check_applied(kafka_settings, winner, 10.0)
    with pytest.raises(TransientError, match="2 of 2 change\\(s\\) lost to a concurrent change"):
        _check_applied(kafka_settings, loser, 10.0)
