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
from schemas import Exposure, MetricEvent, RegistryRecord
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
        }
    ]
}


def _seed(home: Path) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=now
    )
    exposures = [make_exposure(f"u{i}", i % 2, now, 0, False, KEY) for i in range(400)]
    events = [
        MetricEvent(
            event_id=f"e{i}-{n}",
            unit_id=f"u{i}",
            event_name=name,
            value=1.0,
            occurred_at=now + timedelta(minutes=1),
        )
        for i in range(400)
        for n, name in enumerate(["pageview", "purchase"][: 1 + (i % 3 == 0) + (i % 2 == 1 and i % 5 == 0)])
    ]
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))  # what a stream worker stores
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.events", to_arrow(events, MetricEvent))
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
