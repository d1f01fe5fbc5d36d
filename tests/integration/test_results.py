"""Results against chDB: hand-made rows recounted with numpy; loadgen's --lift found by stream + stats.

1. Exposures and attributed events are inserted by hand into a fresh store (``warehouse`` fixture); the
   sums the per-metric query (``jobs.results.metric_sql.scan``) returns are checked against a numpy
   recount of the same rows, with
   multiply-exposed and overridden units excluded, units without events counted as 0, windows applied.
2. ``xp loadgen --lift 0.2`` → ``xp stream run`` (subprocesses, real broker) → results: the relative lift
   of conversion is significant (sequential) and its interval contains 0.2.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.results.compute import compute_experiment_result
from jobs.results.snapshots import store_results
from jobs.results.sums import fetch_metric_sums
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.factories import make_exposure
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1h"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})


def experiment_spec(key: str, variations: int, metrics: MetricsSpec | None = None) -> ExperimentSpec:
    return ExperimentSpec(
        key=key,
        name=key,
        status=ExperimentStatus.RUNNING,
        feature_key=key,
        variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / variations) for i in range(variations)),
        metrics=metrics or MetricsSpec(),
    )


class HandMade:
    """Units of experiment 'exp' (3 variations); their exposures, attributions and the expected sums."""

    def __init__(self, seed: int, units: int = 600) -> None:
        rng = random.Random(seed)
        self.exposures: list[Exposure] = []
        self.attributions: list[Attribution] = []
        self.variation: dict[str, int] = {}  # eligible units only
        self.first: dict[str, datetime] = {}
        self.excluded: set[str] = set()
        for u in range(units):
            unit = f"u{u}"
            first = BASE + timedelta(seconds=rng.randrange(3600))
            variation = rng.randrange(3)
            seen = [variation]
            overridden = u % 23 == 0
            if u % 19 == 0:
                seen.append((variation + 1) % 3)  # seen in two variations: excluded
            for i, v in enumerate(seen):
                self.exposures.append(self._exposure(unit, v, first + timedelta(minutes=i), i, overridden))
            if u % 7 == 0:  # a repeated exposure in the same variation stays eligible
                self.exposures.append(
                    self._exposure(unit, variation, first + timedelta(hours=1), 9, overridden)
                )
            if len(seen) > 1 or overridden:
                self.excluded.add(unit)
            else:
                self.variation[unit] = variation
                self.first[unit] = first
            for j in range(rng.choice([0, 0, 1, 2, 4])):
                name = rng.choice(["purchase", "pageview"])
                value = round(rng.uniform(1, 80), 2) if name == "purchase" else None
                occurred = first + timedelta(minutes=rng.randrange(0, 180))
                self.attributions.append(
                    Attribution(f"e{u}-{j}", unit, "exp", variation, name, value, occurred, first)
                )
        # another experiment's rows never leak in
        self.exposures.append(self._exposure("u0", 1, BASE, 0, False, experiment="other"))
        self.attributions.append(Attribution("o1", "u0", "other", 1, "purchase", 999.0, BASE, BASE))

    _exposure = staticmethod(make_exposure)

    def unit_values(self, event: str, how: str, window: timedelta | None = None) -> dict[int, np.ndarray]:
        """Per variation, every eligible unit's value (0 without events), recounted from the rows."""
        values: dict[str, float] = dict.fromkeys(self.variation, 0.0)
        counted: dict[str, int] = defaultdict(int)
        for a in self.attributions:
            if a.experiment_key != "exp" or a.unit_id not in self.variation or a.event_name != event:
                continue
            if window is not None and a.occurred_at > self.first[a.unit_id] + window:
                continue
            counted[a.unit_id] += 1
            values[a.unit_id] += (a.value or 0.0) if how == "sum" else 1.0
        if how == "binary":
            values = {u: float(counted[u] > 0) for u in values}
        by_variation: dict[int, list[float]] = defaultdict(list)
        for unit, value in values.items():
            by_variation[self.variation[unit]].append(value)
        return {v: np.array(x) for v, x in sorted(by_variation.items())}


def load(warehouse: Warehouse, data: HandMade) -> None:
    warehouse.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions))
    # a re-sent attribution (another batch) must count once
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions[:5]))


def test_sums_equal_a_numpy_recount(warehouse: Warehouse) -> None:
    data = HandMade(seed=5)
    load(warehouse, data)
    spec = experiment_spec(
        "exp",
        3,
        MetricsSpec(
            primary=("conversion",),
            secondary=("revenue", "orders", "aov", "pageviews"),
            definitions=(ORDERS, AOV),
        ),
    )
    until = BASE + timedelta(days=1)
    sums = fetch_metric_sums(warehouse, spec, since=BASE - timedelta(days=1), until=until)

    expected = {
        "conversion": data.unit_values("purchase", "binary"),
        "revenue": data.unit_values("purchase", "sum"),
        "orders": data.unit_values("purchase", "count", window=timedelta(hours=1)),
        "pageviews": data.unit_values("pageview", "count"),
    }
    assert data.excluded and len(data.variation) + len(data.excluded) == 600
    for name, per_variation in expected.items():
        rows = {row.variation_id: row for row in sums[name]}
        assert sorted(rows) == [0, 1, 2]
        for variation, values in per_variation.items():
            row = rows[variation]
            assert row.units == len(values), (name, variation)
            assert row.sum_a == pytest.approx(values.sum()), (name, variation)
            assert row.sum_a_squares == pytest.approx(np.square(values).sum()), (name, variation)
    # the 1 h window of `orders` matters in this data (events up to 3 h after exposure)
    assert sum(r.sum_a for r in sums["orders"]) < sum(len(v) for v in expected["conversion"].values()) * 10
    assert sum(expected["orders"][v].sum() for v in range(3)) < sum(
        data.unit_values("purchase", "count")[v].sum() for v in range(3)
    )
    # ratio: numerator revenue (no window) and denominator orders (1 h), with the cross sum
    revenue, orders = expected["revenue"], expected["orders"]
    for row in sums["aov"]:
        v = row.variation_id
        assert (row.sum_a, row.sum_b) == (pytest.approx(revenue[v].sum()), pytest.approx(orders[v].sum()))
        assert row.sum_b_squares == pytest.approx(np.square(orders[v]).sum())
        assert row.cross_sum == pytest.approx((revenue[v] * orders[v]).sum())

    result = compute_experiment_result(warehouse, spec, until=until, method="frequentist")
    conversion = result.to_json()["metrics"][0]
    for variant in conversion["variants"]:
        values = expected["conversion"][variant["variation_id"]]
        assert variant["units"] == len(values)
        assert variant["mean"] == pytest.approx(values.mean())
    assert result.srm_p_value is not None


def test_window_filters_units_and_events(warehouse: Warehouse) -> None:
    data = HandMade(seed=8, units=200)
    load(warehouse, data)
    spec = experiment_spec("exp", 3)
    since, until = BASE + timedelta(minutes=30), BASE + timedelta(minutes=90)
    sums = fetch_metric_sums(warehouse, spec, since=since, until=until)
    in_window = {u for u, first in data.first.items() if since <= first < until}
    assert sum(r.units for r in sums["pageviews"]) == len(in_window)
    expected = sum(
        1
        for a in data.attributions
        if a.experiment_key == "exp"
        and a.unit_id in in_window
        and a.event_name == "pageview"
        and a.occurred_at < until
    )
    assert sum(r.sum_a for r in sums["pageviews"]) == expected


def test_no_data_and_snapshots(warehouse: Warehouse) -> None:
    spec = experiment_spec("empty", 2)
    computed_at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    result = compute_experiment_result(warehouse, spec, computed_at=computed_at)
    document = result.to_json()
    assert document["srm_p_value"] is None
    assert all(v["units"] == 0 and v["error"] for m in document["metrics"] for v in m["variants"])

    later = compute_experiment_result(warehouse, spec, computed_at=computed_at + timedelta(hours=1))
    assert store_results(warehouse, [result]) == 6  # 3 default metrics × 2 variations
    store_results(warehouse, [later])
    store_results(warehouse, [later])  # a retried insert of the same run is deduplicated
    rows = warehouse.query_arrow(
        "SELECT computed_at, count() AS n FROM xp.results WHERE experiment_key = {e:String} "
        "GROUP BY computed_at ORDER BY computed_at",
        {"e": "empty"},
    ).to_pylist()
    assert [r["n"] for r in rows] == [6, 6]
    assert [r["computed_at"].replace(tzinfo=UTC) for r in rows] == [
        computed_at,
        computed_at + timedelta(hours=1),
    ]


# ---- loadgen --lift → stream → results ------------------------------------------------------------

LIFT_PAYLOAD = {
    "features": {
        "lift-feature": {
            "defaultValue": False,
            "rules": [
                {
                    "key": "lift-exp",
                    "variations": [False, True],
                    "weights": [0.5, 0.5],
                    "coverage": 1,
                    "hashAttribute": "id",
                    "meta": [
                        {"key": "control", "name": "Control"},
                        {"key": "treatment", "name": "Treatment"},
                    ],
                }
            ],
        }
    }
}
LIFT_REGISTRY = {
    "experiments": {
        "lift-exp": {
            "variations": [
                {"id": 0, "key": "control", "name": "Control"},
                {"id": 1, "key": "treatment", "name": "Treatment"},
            ]
        }
    }
}


def run_xp(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def lift_workload(
    kafka_settings: KafkaSettings, tmp_path: Path, **extra_env: str
) -> tuple[Path, Path, dict[str, Any]]:
    """(XP_HOME, the payload file, the environment) of an `xp loadgen` → `xp stream run` test over the
    lift experiment: the registry from a file, this test's topics, the embedded store."""
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
        **extra_env,
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    return home, payload, env


def test_loadgen_lift_is_found(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home, payload, env = lift_workload(kafka_settings, tmp_path)
    report = json.loads(
        run_xp(
            env,
            "loadgen",
            "--features",
            str(payload),
            "--users",
            "20000",
            "--events",
            "40000",
            "--lift",
            "0.2",
            "--seed",
            "11",
            "--format",
            "json",
        )
    )
    assert report["exposures"] == 20000
    run_xp(env, "stream", "run", "--until-idle", "2", "--format", "json")

    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        result = compute_experiment_result(store, experiment_spec("lift-exp", 2))
    finally:
        store.close()
    document = result.to_json()
    print(json.dumps(document["metrics"][0]["variants"][1]), document["srm_p_value"])  # figures in -s runs
    assert document["method"] == "sequential"
    metrics = {m["metric"]: m for m in document["metrics"]}
    control, treatment = metrics["conversion"]["variants"]
    assert control["units"] + treatment["units"] == 20000
    assert document["srm_p_value"] > 0.001
    assert treatment["significant"] is True, treatment
    assert treatment["ci_low"] < 0.2 < treatment["ci_high"], treatment
    assert treatment["estimate"] == pytest.approx(0.2, abs=0.1)
    pageviews = metrics["pageviews"]["variants"][1]
    assert pageviews["significant"] and pageviews["ci_low"] < 0.2 < pageviews["ci_high"], pageviews


def test_cli_unknown_experiment_is_one_line_exit_2(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XP_HOME": str(tmp_path / "xp-home"),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "results", "no-such-experiment", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: unknown experiment 'no-such-experiment'")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
