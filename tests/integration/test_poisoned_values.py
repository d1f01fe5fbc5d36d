"""A poisoned value already in the warehouse breaks one metric, not results (issue #13 item 2, decision 0037).

A purchase worth 1.7e308 makes Σ value² infinite. Ingest now dead-letters such values, but rows loaded
before that (or inserted by hand) stay in the store. Here one is inserted directly into
``xp.attributed_events`` (after exposure: revenue and the average order value of checkout-button) and one
into ``xp.events`` (before exposure: revenue's CUPED covariate), next to the clean sample data of two
experiments. Then, against the real CLI (subprocesses, registry through the real broker) and the dashboard:

- `xp results checkout-button --format json --fresh` codes those two metrics ``non_finite_sums`` and gives
  every other metric the numbers it had without the poisoned rows; the table format shows the code;
- the other experiment's results are unchanged;
- `xp jobs run stats` stores every experiment and metric, the poisoned ones with their code;
- `xp jobs run quality` runs;
- the dashboard's results API answers 200 with the code on those metrics (snapshot and computed window).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.fixtures.kafka import KafkaBroker
from xpcore.config import KafkaSettings

pytestmark = pytest.mark.integration

KEY, OTHER = "checkout-button", "pricing-page-annual-first"
POISONED = {"revenue", "average_order_value"}
POISON = 1.7e308
COMPARED = ("variation_id", "units", "mean", "estimate", "ci_low", "ci_high", "p_value", "error")
"""Fields of a variant that must not move (the Holm family shrinks: p_value_adjusted may)."""


@dataclass
class Store:
    home: Path
    kafka: KafkaSettings
    until: datetime
    clean: dict[str, dict[str, Any]]
    """`xp results --format json` of each experiment before the poisoned rows were inserted."""


def _swap_value(table: pa.Table, value: float) -> pa.Table:
    """The same rows with ``value`` replaced: the typed records would refuse a poisoned value."""
    index = table.schema.get_field_index("value")
    return table.set_column(
        index, table.schema.field(index), pa.array([value] * table.num_rows, pa.float64())
    )


def _events_table(unit: str, event_id: str, occurred_at: datetime, value: float) -> pa.Table:
    from schemas import MetricEvent
    from schemas.arrow import to_arrow

    event = MetricEvent(
        event_id=event_id, unit_id=unit, event_name="purchase", value=1.0, occurred_at=occurred_at
    )
    return _swap_value(to_arrow([event], MetricEvent), value)


def _attributed_table(row: dict[str, Any], event_id: str, value: float) -> pa.Table:
    from pipelines.attribution import Attribution
    from pipelines.processor import attributions_table

    attribution = Attribution(
        event_id,
        row["unit_id"],
        KEY,
        int(row["variation_id"]),
        "purchase",
        1.0,
        row["occurred_at"].replace(tzinfo=UTC),
        row["first_exposed_at"].replace(tzinfo=UTC),
    )
    return _swap_value(attributions_table([attribution]), value)


def _compute(warehouse: Any, snapshot: Any, until: datetime) -> dict[str, dict[str, Any]]:
    from jobs.results.compute import compute_experiment_result, experiment_plan
    from xpcore.config import EtlSettings

    documents = {}
    for key in (KEY, OTHER):
        spec = snapshot.experiments[key]
        result = compute_experiment_result(
            warehouse,
            spec,
            until=until,
            plan=experiment_plan(snapshot, spec),
            covariate_days=EtlSettings().etl_covariate_days,
            fresh=True,
        )
        documents[key] = json.loads(json.dumps(result.to_json()))
    return documents


@pytest.fixture(scope="module")
def store(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from assignment.registry import RegistrySnapshot
    from assignment.registry_topic import publish_changes
    from dashboards.sample_data import seed_sample_data
    from dashboards.settings import DashboardSettings
    from xpcore.kafka.topics import ensure_topics
    from xpcore.warehouse import open_warehouse

    home = tmp_path_factory.mktemp("poison") / "xp-home"
    kafka = kafka_broker.settings(topic_prefix=f"poison-{uuid.uuid4().hex[:8]}-")
    ensure_topics(kafka)
    warehouse = open_warehouse(DashboardSettings(home=home, clickhouse_url=None, store_wait_seconds=0))
    try:
        data = seed_sample_data(
            warehouse, units=600, minutes=30, now=datetime.now(UTC) - timedelta(minutes=5), quality=False
        )
        snapshot = RegistrySnapshot.from_records(data.records)
        buyers = warehouse.query_arrow(
            "SELECT unit_id, variation_id, occurred_at, first_exposed_at FROM xp.attributed_events "
            "WHERE experiment_key = {e:String} AND event_name = 'purchase' ORDER BY unit_id LIMIT 2",
            {"e": KEY},
        ).to_pylist()
        assert len(buyers) == 2
        # unit B bought before its exposure too (clean), so its conversion covariate is 1 either way
        before = buyers[1]["first_exposed_at"].replace(tzinfo=UTC) - timedelta(days=1)
        warehouse.insert_arrow("xp.events", _events_table(buyers[1]["unit_id"], "clean-pre", before, 5.0))
        until = data.now + timedelta(minutes=1)
        clean = _compute(warehouse, snapshot, until)
        # the poison: an attributed purchase of unit A, a pre-exposure purchase of unit B
        warehouse.insert_arrow("xp.attributed_events", _attributed_table(buyers[0], "poison-post", POISON))
        warehouse.insert_arrow("xp.events", _events_table(buyers[1]["unit_id"], "poison-pre", before, POISON))
    finally:
        warehouse.close()
    publish_changes(kafka, data.records)
    yield Store(home, kafka, until, clean)


def run_xp(store: Store, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **extra,
        "XP_HOME": str(store.home),
        "XP_KAFKA_BOOTSTRAP": store.kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": store.kafka.topic_prefix,
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def results_json(store: Store, key: str, **extra: str) -> dict[str, Any]:
    until = store.until.isoformat()
    done = run_xp(store, "results", key, "--format", "json", "--fresh", "--until", until, **extra)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def compared(metric: dict[str, Any]) -> list[dict[str, Any]]:
    return [{field: variant[field] for field in COMPARED} for variant in metric["variants"]]


@pytest.mark.parametrize("unit_values", ["true", "false"])  # xp.unit_values, or the live scan
def test_results_code_the_poisoned_metrics_and_keep_the_others(store: Store, unit_values: str) -> None:
    document = results_json(store, KEY, XP_RESULTS_UNIT_VALUES=unit_values)
    metrics = {m["metric"]: m for m in document["metrics"]}
    clean = {m["metric"]: m for m in store.clean[KEY]["metrics"]}
    assert set(metrics) == set(clean) and set(metrics) > POISONED
    for name in POISONED:
        assert {v["error"] for v in metrics[name]["variants"]} == {"non_finite_sums"}, metrics[name]
        assert all(v["mean"] is None and v["estimate"] is None for v in metrics[name]["variants"])
        assert clean[name]["variants"][1]["estimate"] is not None  # it was computed without the poison
    for name in set(metrics) - POISONED:
        assert compared(metrics[name]) == compared(clean[name]), name
    assert any(
        v["estimate"] is not None for name in set(metrics) - POISONED for v in metrics[name]["variants"]
    )
    assert document["srm_p_value"] == store.clean[KEY]["srm_p_value"]


def test_results_table_shows_the_code(store: Store) -> None:
    done = run_xp(store, "results", KEY, "--fresh", "--until", store.until.isoformat())
    assert done.returncode == 0, done.stderr
    assert "non_finite_sums" in done.stdout and "conversion" in done.stdout


def test_the_other_experiment_is_unchanged(store: Store) -> None:
    document = results_json(store, OTHER)
    clean = store.clean[OTHER]
    assert [compared(m) for m in document["metrics"]] == [compared(m) for m in clean["metrics"]]
    assert all(v["error"] != "non_finite_sums" for m in document["metrics"] for v in m["variants"])


def test_stats_job_stores_every_experiment_and_metric(store: Store) -> None:
    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    done = run_xp(store, "jobs", "run", "stats")
    assert done.returncode == 0, done.stderr
    warehouse = open_warehouse(DashboardSettings(home=store.home, clickhouse_url=None, store_wait_seconds=10))
    try:
        rows = warehouse.query_arrow(
            "SELECT experiment_key, metric, variation_id, error, estimate FROM xp.results "
            "WHERE computed_at = (SELECT max(computed_at) FROM xp.results)"
        ).to_pylist()
    finally:
        warehouse.close()
    by_metric: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_metric.setdefault((row["experiment_key"], row["metric"]), []).append(row)
    assert {key for key, _ in by_metric} >= {KEY, OTHER}
    expected = {(KEY, m["metric"]) for m in store.clean[KEY]["metrics"]}
    expected |= {(OTHER, m["metric"]) for m in store.clean[OTHER]["metrics"]}
    assert expected <= set(by_metric)
    for (key, metric), variants in by_metric.items():
        errors = {v["error"] for v in variants}
        if key == KEY and metric in POISONED:
            assert errors == {"non_finite_sums"}
        else:
            assert "non_finite_sums" not in errors, (key, metric)
    assert any(v["estimate"] is not None for v in by_metric[(KEY, "conversion")])


@pytest.mark.parametrize("job", ["unit-values", "etl"])
def test_the_other_jobs_run(store: Store, job: str) -> None:
    done = run_xp(store, "jobs", "run", job)
    assert done.returncode == 0, done.stderr


def test_quality_runs(store: Store) -> None:
    done = run_xp(store, "jobs", "run", "quality", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])


def test_dashboard_results_api_marks_the_metric(store: Store) -> None:
    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    stats = run_xp(store, "jobs", "run", "stats")  # the snapshot the page shows without a window
    assert stats.returncode == 0, stats.stderr
    settings = DashboardSettings(
        home=store.home,
        clickhouse_url=None,
        store_wait_seconds=10,
        kafka_bootstrap=store.kafka.kafka_bootstrap,
        topic_prefix=store.kafka.topic_prefix,
    )
    warehouse = open_warehouse(settings)
    try:
        with TestClient(create_app(settings, warehouse, lag_monitor=False)) as client:
            url = f"/api/experiments/{KEY}/results"
            views = [client.get(url)]  # the newest snapshot (or a computation)
            params = {"until": store.until.isoformat()}
            first = client.get(url, params=params)  # a window: computed in the background
            assert first.status_code in (200, 202), first.text
            client.app.state.dashboard.views.wait_all(300)  # type: ignore[attr-defined]
            views.append(client.get(url, params=params))
            for response in views:
                assert response.status_code == 200, response.text
                metrics = {m["metric"]: m for m in response.json()["result"]["metrics"]}
                for name in POISONED:
                    assert {v["error"] for v in metrics[name]["variants"]} == {"non_finite_sums"}
                assert metrics["conversion"]["variants"][1]["estimate"] is not None
            health = client.get(f"/api/experiments/{KEY}/health")
            assert health.status_code == 200, health.text
    finally:
        warehouse.close()


def test_segments_code_the_poisoned_segment_only(store: Store) -> None:
    until = store.until.isoformat()
    done = run_xp(store, "results", KEY, "--format", "json", "--until", until, "--segment", "country")
    assert done.returncode == 0, done.stderr
    segments = json.loads(done.stdout)["segments"]["values"]
    revenue_errors = {
        s["segment"]: {v["error"] for m in s["metrics"] if m["metric"] == "revenue" for v in m["variants"]}
        for s in segments
    }
    poisoned = [name for name, errors in revenue_errors.items() if errors == {"non_finite_sums"}]
    assert len(poisoned) == 1, revenue_errors  # the country of the unit with the poisoned purchase
    assert any("non_finite_sums" not in errors for errors in revenue_errors.values()), revenue_errors
