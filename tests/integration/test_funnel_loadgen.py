"""The funnel on a loadgen workload: ``xp loadgen --lift 0.2`` → ``xp stream run`` (subprocesses, real
broker) → the funnel pageview → purchase (any order) recovers loadgen's lift on purchase, and its purchase
step counts exactly the units the results' ``conversion`` metric (binary purchase) counts.

The simulator produces pageviews and purchases only (no add_to_cart), with the lift on both; the lift on
a middle step is checked on seeded rows in ``test_funnels.py``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.funnel_block import make_funnel
from jobs.activity import compute_activity
from jobs.analysis_plan import AnalysisPlan
from jobs.funnels import compute_funnel
from jobs.results.compute import compute_experiment_result
from tests.integration.test_results import LIFT_PAYLOAD, LIFT_REGISTRY, experiment_spec, run_xp
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration


def test_funnel_recovers_the_loadgen_lift_and_equals_conversion(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    home = tmp_path / "xp-home"
    payload, registry = tmp_path / "payload.json", tmp_path / "registry.json"
    payload.write_text(json.dumps(LIFT_PAYLOAD))
    registry.write_text(json.dumps(LIFT_REGISTRY))
    env: dict[str, Any] = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STREAM_REGISTRY_FILE": str(registry),
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    loadgen = ["--users", "20000", "--events", "40000", "--lift", "0.2", "--seed", "11", "--format", "json"]
    run_xp(env, "loadgen", "--features", str(payload), *loadgen)
    run_xp(env, "stream", "run", "--until-idle", "2", "--format", "json")

    spec = experiment_spec("lift-exp", 2)
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        results = compute_experiment_result(store, spec, plan=AnalysisPlan(method="frequentist")).to_json()
        funnel = compute_funnel(
            store,
            spec,
            make_funnel(["pageview", "purchase"], "14d", False),
            plan=AnalysisPlan(method="frequentist"),
        ).to_json()
        purchase_only = compute_funnel(
            store, spec, make_funnel(["purchase"], "14d"), plan=AnalysisPlan(method="frequentist")
        ).to_json()
    finally:
        store.close()
    conversion = {m["metric"]: m for m in results["metrics"]}["conversion"]["variants"]
    for variant, variation in zip(conversion, purchase_only["variations"], strict=True):
        exposed, bought = variation["steps"][0]["units"], variation["steps"][1]["units"]
        assert exposed == variant["units"]
        assert bought == round(variant["mean"] * variant["units"])  # the funnel's step = the binary metric
    treatment = purchase_only["variations"][1]["steps"][1]
    assert treatment["lift"] == pytest.approx(conversion[1]["estimate"])
    assert treatment["significant"] and treatment["ci_low"] < 0.2 < treatment["ci_high"], treatment
    both = funnel["variations"][1]["steps"]
    assert (
        both[2]["units"] <= both[1]["units"]
        and both[2]["units"] <= purchase_only["variations"][1]["steps"][1]["units"]
    )
    # pageviews: loadgen lifts their *rate* by 20 %; the share of units with at least one rises by less
    # (1 - e^-λ is concave), and still significantly
    assert both[1]["ci_low"] > 0 and both[1]["lift"] < 0.2, both[1]


def test_the_funnel_recovers_a_lift_loadgen_puts_on_a_middle_step(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """``xp loadgen --funnel pageview,add_to_cart,purchase --funnel-lift add_to_cart=0.3`` (no other events):
    treatment units reach add_to_cart from pageview 1.3× as often, so the ordered funnel shows no lift on
    pageview and a lift of 0.3 on add_to_cart and on purchase (its conversion from add_to_cart is
    unchanged); each step's units equal a direct count of the units with that event, and the activity
    roll-up's exposures per source equal a direct count and loadgen's own."""
    home = tmp_path / "xp-home"
    payload, registry = tmp_path / "payload.json", tmp_path / "registry.json"
    payload.write_text(json.dumps(LIFT_PAYLOAD))
    registry.write_text(json.dumps(LIFT_REGISTRY))
    env: dict[str, Any] = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STREAM_REGISTRY_FILE": str(registry),
        "XP_STORE_WAIT_SECONDS": "10",
        "XP_STREAM_EVENT_NAMES": '["pageview", "purchase", "add_to_cart"]',  # no catalog here
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    steps = ["pageview", "add_to_cart", "purchase"]
    loadgen = ["--users", "30000", "--events", "0", "--seed", "5", "--format", "json"]
    funnel_options = ["--funnel", ",".join(steps), "--funnel-lift", "add_to_cart=0.3"]
    counts = json.loads(run_xp(env, "loadgen", "--features", str(payload), *loadgen, *funnel_options))
    run_xp(env, "stream", "run", "--until-idle", "2", "--format", "json")

    spec = experiment_spec("lift-exp", 2)
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        funnel = compute_funnel(
            store, spec, make_funnel(steps, "14d", True), plan=AnalysisPlan(method="frequentist")
        ).to_json()
        direct = store.query_arrow(
            "SELECT variation_id, event_name, uniqExact(unit_id) AS units FROM xp.attributed_events FINAL"
            " WHERE experiment_key = 'lift-exp' GROUP BY variation_id, event_name"
        ).to_pylist()
        now = datetime.now(UTC)
        activity = compute_activity(store, since=now - timedelta(days=1), until=now + timedelta(hours=1))
        exposures_by_source = store.query_arrow(
            "SELECT toString(source) AS source, count() AS n FROM xp.exposures FINAL GROUP BY source"
        ).to_pylist()
    finally:
        store.close()
    assert sum(counts["by_event_name"].values()) == counts["events"] > 0
    # the Activity page's usage on the same workload: loadgen's exposures, as loadgen counted them
    usage: dict[str, int] = {}
    for row in activity["usage"]:
        usage[row["source"]] = usage.get(row["source"], 0) + row["exposures"]
    assert usage == {r["source"]: r["n"] for r in exposures_by_source} == {"loadgen": counts["exposures"]}
    with_event = {(r["variation_id"], r["event_name"]): r["units"] for r in direct}
    for variation in funnel["variations"]:
        for step in variation["steps"][1:]:
            assert step["units"] == with_event[(variation["variation_id"], step["step"])], step
    treatment = {s["step"]: s for s in funnel["variations"][1]["steps"]}
    assert treatment["pageview"]["ci_low"] < 0 < treatment["pageview"]["ci_high"], treatment["pageview"]
    for step in ("add_to_cart", "purchase"):
        assert treatment[step]["ci_low"] < 0.3 < treatment[step]["ci_high"], treatment[step]
        assert treatment[step]["ci_low"] > 0.1 and treatment[step]["significant"], treatment[step]
