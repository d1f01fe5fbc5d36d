"""`xp funnel` as a subprocess: the declared funnel, flags on top, the JSON equal to the in-process
computation on the same store, one-line errors, and hostile step names kept as bound values (issue #20).

Kafka is down on purpose (a closed port): the registry is read from the warehouse's copy, as ``xp
results`` does, so no broker is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from assignment.funnel_block import make_funnel
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from jobs.analysis_plan import AnalysisPlan
from jobs.funnels import compute_funnel
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure, RegistryRecord
from schemas.arrow import to_arrow
from tests.factories import make_exposure
from tests.fixtures.kafka import free_ports
from xpcore.config import WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration

KEY = "funnel-exp"
PLAIN = "plain-exp"
DOCUMENT = {
    "experiments": [
        {
            "key": KEY,
            "status": "running",
            "variations": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
            "analysis": {"method": "frequentist", "correction": "holm"},
            "funnel": {"steps": ["exposure", "pageview", "purchase"], "window": "2h"},
        },
        {"key": PLAIN, "status": "running", "variations": ["a", "b"]},
    ]
}
NOW = datetime.now(UTC) - timedelta(hours=3)


def _seed(home: Path) -> RegistrySnapshot:
    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=NOW
    )
    exposures = [make_exposure(f"u{i}", i % 2, NOW, 0, False, KEY) for i in range(400)]
    attributions = []
    for i in range(400):
        if i % 3:
            attributions.append(
                Attribution(f"p{i}", f"u{i}", KEY, i % 2, "pageview", None, NOW + timedelta(minutes=1), NOW)
            )
        if i % 5 < (
            2 if i % 2 else 1
        ):  # treatment buys more; some buy late (outside 2 h) or without a pageview
            late = timedelta(hours=3) if i % 7 == 0 else timedelta(minutes=30)
            attributions.append(Attribution(f"b{i}", f"u{i}", KEY, i % 2, "purchase", 9.0, NOW + late, NOW))
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.attributed_events", attributions_table(attributions))
    finally:
        store.close()
    return RegistrySnapshot.from_records(records)


def _env(home: Path) -> dict[str, str]:
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    return env | {
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}",
        "XP_STORE_WAIT_SECONDS": "10",
    }


def _xp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "funnel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_declared_funnel_json_equals_the_computation_and_flags_override(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    snapshot = _seed(home)
    env = _env(home)
    until = (NOW + timedelta(hours=5)).isoformat()
    run = _xp(env, KEY, "--until", until, "--format", "json")
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    assert document["steps"] == ["exposure", "pageview", "purchase"]
    assert (document["window_hours"], document["ordered"], document["correction"]) == (2.0, True, "holm")

    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        expected = compute_funnel(
            store,
            snapshot.experiments[KEY],
            make_funnel(["pageview", "purchase"], 2.0),
            plan=AnalysisPlan(method="frequentist", correction="holm"),
            until=datetime.fromisoformat(until),
        ).to_json()
    finally:
        store.close()
    assert document["variations"] == expected["variations"]
    units = [[s["units"] for s in v["steps"]] for v in document["variations"]]
    # by hand: 200 units each; pageview i % 3 != 0; purchase within 2 h after a pageview, ordered
    by_hand = []
    for parity in (0, 1):
        ids = [i for i in range(400) if i % 2 == parity]
        viewed = [i for i in ids if i % 3]
        bought = [i for i in viewed if i % 5 < (2 if parity else 1) and i % 7]
        by_hand.append([len(ids), len(viewed), len(bought)])
    assert units == by_hand

    unordered = _xp(env, KEY, "--until", until, "--any-order", "--window", "4h", "--format", "json")
    assert unordered.returncode == 0, unordered.stderr
    wider = json.loads(unordered.stdout)
    assert (wider["window_hours"], wider["ordered"]) == (4.0, False)
    assert wider["variations"][1]["steps"][2]["units"] > document["variations"][1]["steps"][2]["units"]

    table = _xp(env, KEY, "--until", until)
    assert table.returncode == 0, table.stderr
    assert "exposure → pageview → purchase" in table.stdout and str(by_hand[1][2]) in table.stdout


def test_errors_are_one_line_and_hostile_steps_are_values(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    _seed(home)
    env = _env(home)
    for args, words in (
        ((PLAIN,), "declares no funnel: give its steps, e.g. --steps"),
        ((KEY, "--window", "soon"), "funnel: window: must be hours"),
        ((KEY, "--steps", "pageview,pageview"), "funnel: steps: must be a list of 1 to 20 distinct"),
        (("nope",), "unknown experiment 'nope'"),
    ):
        run = _xp(env, *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        lines = [line for line in run.stderr.splitlines() if not line.startswith("note:")]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in run.stderr

    hostile = "x') OR 1=1 --,purchase'; DROP TABLE xp.exposures"
    run = _xp(env, KEY, "--steps", hostile, "--format", "json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["steps"][1:] == [s.strip() for s in hostile.split(",")]
    assert all(s["units"] == 0 for v in document["variations"] for s in v["steps"][1:])
    again = _xp(env, KEY, "--format", "json")  # the table is still there
    assert again.returncode == 0 and json.loads(again.stdout)["variations"][0]["steps"][0]["units"] == 200
