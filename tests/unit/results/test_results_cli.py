"""`xp results`: --fresh reaches the computation, and the output says up to when the data goes
(``data_as_of``, decision 0028's staleness bound). The computation itself is stubbed: its staleness
paths are tested against real chDB in tests/integration/test_unit_values_staleness.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from assignment.registry import ExperimentSpec, MetricsSpec, RegistrySnapshot, VariationSpec
from jobs.results.analysis import analyze_experiment
from jobs.results.rows import VariationSums
from schemas.records import ExperimentStatus
from xpstream.cli.main import app
from xpstream.cli.results import _as_of_line

COMPUTED = datetime(2026, 11, 26, 4, 30, tzinfo=UTC)
SPEC = ExperimentSpec(
    key="exp",
    name="Exp",
    status=ExperimentStatus.RUNNING,
    feature_key="exp",
    variations=(VariationSpec(0, "control", "Control", 0.5), VariationSpec(1, "treatment", "Treatment", 0.5)),
    metrics=MetricsSpec(),
)


class NoStore:
    """Stands in for the warehouse the command opens and closes (the computation is stubbed)."""

    def close(self) -> None:
        pass


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Run `xp results` without services: the registry has SPEC; compute_experiment_result records its
    options and returns a result whose data is 42 s older than computed_at."""
    import assignment.registry_topic
    import jobs.results.compute
    import xpcore.warehouse

    recorded: list[dict[str, Any]] = []

    def compute(_warehouse: Any, spec: ExperimentSpec, **options: Any) -> Any:
        recorded.append(options)
        sums = {"conversion": [VariationSums(0, 100, 10.0, 10.0), VariationSums(1, 100, 12.0, 12.0)]}
        result = analyze_experiment(spec, sums, computed_at=COMPUTED, since=COMPUTED, until=COMPUTED)
        return replace(result, data_as_of=COMPUTED - timedelta(seconds=42))

    monkeypatch.setattr(
        assignment.registry_topic,
        "read_registry",
        lambda *a, **k: RegistrySnapshot(experiments={"exp": SPEC}),
    )
    monkeypatch.setattr(xpcore.warehouse, "open_warehouse", lambda *a, **k: NoStore())
    monkeypatch.setattr(jobs.results.compute, "compute_experiment_result", compute)
    return recorded


def test_fresh_is_passed_on_and_off_by_default(calls: list[dict[str, Any]]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["results", "exp", "--format", "json"]).exit_code == 0
    assert runner.invoke(app, ["results", "exp", "--format", "json", "--fresh"]).exit_code == 0
    assert [call["fresh"] for call in calls] == [False, True]


def test_json_and_table_say_up_to_when_the_data_goes(calls: list[dict[str, Any]]) -> None:
    runner = CliRunner()
    document = json.loads(runner.invoke(app, ["results", "exp", "--format", "json"]).output)
    assert document["data_as_of"] == (COMPUTED - timedelta(seconds=42)).isoformat()
    assert document["computed_at"] == COMPUTED.isoformat()
    table = runner.invoke(app, ["results", "exp"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "data as of 2026-11-26 04:29:18 UTC (42 s before computed; --fresh for now)" in table.output


def test_a_result_without_a_stored_as_of_is_as_of_its_window_end() -> None:
    sums = {"conversion": [VariationSums(0, 10, 1.0, 1.0), VariationSums(1, 10, 2.0, 2.0)]}
    until = COMPUTED - timedelta(days=1)
    result = analyze_experiment(SPEC, sums, computed_at=COMPUTED, since=COMPUTED, until=until)
    assert result.to_json()["data_as_of"] == until.isoformat()
    assert _as_of_line(result) == "data as of 2026-11-25 04:30:00 UTC"  # a past window: no staleness hint
    assert replace(result, until=COMPUTED).to_json()["data_as_of"] == COMPUTED.isoformat()


def test_help_mentions_fresh_with_an_example() -> None:
    result = CliRunner().invoke(app, ["results", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--fresh" in result.output and "xp results checkout-button --fresh" in result.output
