"""Experiments from a GrowthBook payload file; YAML through assignment.authoring; the CLI's checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assignment.registry import ExperimentSpec
from xpcore.errors import ValidationError
from xpstream.loadgen.sources import experiments_from_payload, load_features_file


def test_payload_experiments_match_the_hand_built_specs(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    derived = experiments_from_payload(payload)
    assert [(s.key, s.feature_key, s.hash_attribute, s.coverage) for s in derived] == [
        (s.key, s.feature_key, s.hash_attribute, s.coverage) for s in experiments
    ]
    assert [[(v.id, v.key, v.weight) for v in s.variations] for s in derived] == [
        [(v.id, v.key, v.weight) for v in s.variations] for s in experiments
    ]


def test_rule_without_key_or_meta_defaults_to_feature_key_and_indexes() -> None:
    payload = {"features": {"f": {"defaultValue": 0, "rules": [{"variations": [0, 1]}, {"force": 1}]}}}
    (spec,) = experiments_from_payload(payload)
    assert spec.key == "f" and [v.key for v in spec.variations] == ["0", "1"]
    assert [v.weight for v in spec.variations] == [0.5, 0.5]


def test_features_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ValidationError, match=r"broken\.json: invalid JSON"):
        load_features_file(broken)
    with pytest.raises(ValidationError, match="cannot read"):
        load_features_file(tmp_path / "missing.json")


def test_features_file_round_trip(tmp_path: Path, payload: Any) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    loaded, experiments = load_features_file(path)
    assert loaded == payload
    assert [s.key for s in experiments] == ["checkout-color", "ranker-test"]


YAML = """
experiments:
  - key: yaml-button
    feature: yaml-feature
    status: running
    variations:
      - {key: control, value: blue, weight: 0.5}
      - {key: treatment, value: green, weight: 0.5}
"""


def test_yaml_goes_through_assignment_authoring(tmp_path: Path) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text(YAML)
    payload, experiments = load_features_file(path)  # a ValidationError here is a regression, not a skip
    assert [s.key for s in experiments] == ["yaml-button"]
    assert [(v.key, v.weight) for v in experiments[0].variations] == [("control", 0.5), ("treatment", 0.5)]
    assert "yaml-feature" in payload["features"]


def run_xp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--invalid-fraction", "1.5"], "--invalid-fraction"),
        (["--now", "2020-01-01T00:00:00"], "--now"),
        (["--now", "2999-01-01T00:00:00Z"], "future"),
        (["--features", "/nonexistent/payload.json"], "cannot read"),
    ],
)
def test_cli_refuses_bad_options_with_one_line(args: list[str], message: str) -> None:
    result = run_xp("loadgen", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


class FakeSnapshot:
    def __init__(self, payload: Any, experiments: list[ExperimentSpec]) -> None:
        self._payload, self._experiments = payload, experiments

    def payload(self) -> Any:
        return self._payload

    def running_experiments(self) -> list[ExperimentSpec]:
        return self._experiments


def test_registry_source_uses_the_snapshot(
    payload: Any, experiments: list[ExperimentSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    import assignment.registry_topic
    from xpcore.config import KafkaSettings
    from xpstream.loadgen.sources import load_from_registry

    calls: list[float] = []

    def read_registry(settings: KafkaSettings, timeout: float) -> FakeSnapshot:
        calls.append(timeout)
        return FakeSnapshot(payload, experiments)

    monkeypatch.setattr(assignment.registry_topic, "read_registry", read_registry)
    loaded, specs = load_from_registry(KafkaSettings(), 3.0)
    assert loaded is payload and specs == experiments and calls == [3.0]


def test_the_example_catalogs_events_are_what_loadgen_sends() -> None:
    from pathlib import Path

    from xpstream.loadgen.sources import catalog_event_names

    examples = Path(__file__).resolve().parents[3] / "examples" / "experiments.yaml"
    _, experiments = load_features_file(examples)
    # add_to_cart (add_to_cart metric), refund (refund_rate): the metrics issue #18 found all zeros
    assert catalog_event_names(experiments) == ("add_to_cart", "pageview", "purchase", "refund")
    assert catalog_event_names([]) == ("pageview", "purchase")
