"""Stored snapshots read back as `xp results --format json` documents; single-flight background refresh."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime
from typing import Any

from assignment.authoring import load_registry_file
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from dashboards.results_snapshot import BackgroundResults, snapshot_document
from dashboards.sample_data import EXAMPLES
from jobs.analysis_plan import AnalysisPlan
from jobs.results.analysis import analyze_experiment, analyzed_metrics
from jobs.results.rows import VariationSums
from jobs.results.snapshots import results_table

AT = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)


def spec_and_result(method: str = "frequentist") -> tuple[Any, Any, AnalysisPlan]:
    records = plan_changes(RegistrySnapshot(), load_registry_file(EXAMPLES), actor="t", now=AT)
    spec = RegistrySnapshot.from_records(records).experiments["checkout-button"]
    plan = AnalysisPlan(method=method)  # type: ignore[arg-type]
    sums = {
        metric.name: [
            VariationSums.from_row(
                {
                    "variation_id": v.id,
                    "units": 1000,
                    "sum_a": 100.0 + 10 * v.id,
                    "sum_a_squares": 150.0 + 20 * v.id,
                }
            )
            for v in spec.variations
        ]
        for metric, _ in analyzed_metrics(spec)
    }
    result = analyze_experiment(spec, sums, computed_at=AT, since=AT, until=AT, plan=plan)
    return spec, result, plan


def stored_rows(result: Any) -> list[dict[str, Any]]:
    """The rows results_latest_snapshot.sql reads back (the engine sorts by metric, variation)."""
    rows = results_table([result]).to_pylist()
    return sorted(rows, key=lambda r: (r["metric"], r["variation_id"]))


def test_a_stored_snapshot_reads_back_as_the_results_document() -> None:
    for method in ("frequentist", "bayesian", "sequential"):
        spec, result, plan = spec_and_result(method)
        document = snapshot_document(spec, plan, stored_rows(result))
        expected = json.loads(json.dumps(result.to_json()))
        assert document is not None
        assert [m["metric"] for m in document["metrics"]] == [m["metric"] for m in expected["metrics"]]
        for metric in expected["metrics"]:
            metric["cuped"] = None  # not stored with a snapshot
            for variant in metric["variants"]:
                variant["p_value_adjusted"] = None
        expected["srm_error"] = None
        assert document == expected, method


def test_no_rows_no_document() -> None:
    spec, _, plan = spec_and_result()
    assert snapshot_document(spec, plan, []) is None


def test_background_refresh_is_single_flight_and_keeps_the_newest() -> None:
    background = BackgroundResults()
    gate, calls = threading.Event(), []
    _, result, _ = spec_and_result()
    key = ("checkout-button", 1, 1, "frequentist")

    def compute() -> Any:
        calls.append(1)
        gate.wait(30)
        return result

    assert background.refresh(key, compute) is True
    assert background.refresh(key, compute) is False  # one in flight already
    assert background.in_flight(key) and background.in_flight(("checkout-button",))
    gate.set()
    background.wait(30)
    latest = background.latest(key)
    assert calls == [1] and latest is result and not background.in_flight(key)
    older = dataclasses.replace(latest, computed_at=AT.replace(year=2025))
    background.put(key, older)
    assert background.latest(key) is result  # an older result never replaces a newer one


def test_a_failed_refresh_keeps_what_was_shown() -> None:
    background = BackgroundResults()
    key = ("x", 1, 1, "sequential")

    def boom() -> Any:
        raise RuntimeError("warehouse gone")

    background.refresh(key, boom)
    background.wait(30)
    assert background.latest(key) is None and not background.in_flight(key)
