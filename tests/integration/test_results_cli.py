"""`xp results` as a subprocess: CSV with the JSON's numbers; stored numbers with Kafka down (issue #21)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure, RegistryRecord
from schemas.arrow import to_arrow
from tests.factories import make_exposure
from tests.fixtures.kafka import free_ports
from xpcore.config import WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration

KEY = "csv-exp"
DOCUMENT = {
    "experiments": [
        {
            "key": KEY,
            "status": "running",
            "variations": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
            "metrics": {"primary": ["conversion"], "secondary": ["pageviews"]},
            "analysis": {"planned_units": 1000, "planned_looks": 4},
        }
    ]
}


def _seed(home: Path) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=now
    )
    exposures = [make_exposure(f"u{i}", i % 2, now, 0, False, KEY) for i in range(400)]
    # what a stream worker writes: each unit's events attributed to its variation (treatment converts more)
    attributions = [
        Attribution(f"e{i}-{name}", f"u{i}", KEY, i % 2, name, 1.0, now + timedelta(minutes=1), now)
        for i in range(400)
        for name in ("pageview", *(["purchase"] if i % 5 < (2 if i % 2 else 1) else []))
    ]
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))  # what a stream worker stores
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.attributed_events", attributions_table(attributions))
    finally:
        store.close()


def _results(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "results", KEY, "--method", "frequentist", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_results_with_kafka_down_read_the_registry_copy_and_csv_matches_json(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}

    as_json = _results(env, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert "experiments read from the warehouse's copy of the registry" in as_json.stderr
    document: dict[str, Any] = json.loads(as_json.stdout)
    as_csv = _results(env, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))

    expected = [(m["metric"], v) for m in document["metrics"] for v in m["variants"]]
    assert len(rows) == len(expected) == 4
    for row, (metric, variant) in zip(rows, expected, strict=True):
        assert (row["experiment"], row["segment"], row["metric"], row["name"]) == (
            KEY,
            "",
            metric,
            variant["name"],
        )
        assert int(row["units"]) == variant["units"] == 200
        for column in ("mean", "estimate", "ci_low", "ci_high", "p_value"):
            value = variant[column]
            assert (
                (row[column] == "")
                if value is None
                else float(row[column]) == pytest.approx(value, rel=1e-12)
            )


def test_group_sequential_methods_run_through_xp_results_at_the_planned_look(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}
    documents = {}
    for method in ("frequentist", "group_sequential_obf", "group_sequential_pocock"):
        run = subprocess.run(
            [sys.executable, "-m", "xpstream.cli", "results", KEY, "--method", method, "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        documents[method] = json.loads(run.stdout)
    for method in ("group_sequential_obf", "group_sequential_pocock"):
        document = documents[method]
        assert document["method"] == method and document["analysis"]["planned_units"] == 1000
        treatment = document["metrics"][0]["variants"][1]
        fixed = documents["frequentist"]["metrics"][0]["variants"][1]
        assert treatment["estimate"] == pytest.approx(fixed["estimate"])  # same data, same point estimate
        # 400 of 1000 planned units: an early look, so the repeated interval is wider than the fixed one
        assert treatment["ci_high"] - treatment["ci_low"] > fixed["ci_high"] - fixed["ci_low"]
