"""Team activity and usage on chDB: registry history and exposures seeded with known answers; `xp
activity --format json` (a subprocess; no broker needed) equals them, the computation and direct SQL.

Window [T0+7d, T0+35d). growth owns a (draft at T0, running T0+8d, stopped T0+18d: 10 days) and b
(running T0+9d, stopped T0+13d: 4 days); pricing owns c (running T0+2d, before the window; updated
T0+10d); d has no owner (running T0+20d); a feature changes at T0+10d. Overrides: on a, created T0+9d
expiring T0+12d, created T0+15d expiring after the window; on c, created T0+3d (before) expiring T0+30d,
created T0+11d never expiring.
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

from jobs.activity import compute_activity
from schemas import Exposure, ExposureSource, RegistryChange, RegistryRecord
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.factories import make_exposure
from tests.unit.registry.helpers import experiment, feature, override, record
from xpcore.config import WarehouseSettings
from xpcore.usage import UsageCounts, flush_usage
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 1, tzinfo=UTC)
SINCE, UNTIL = T0 + timedelta(days=7), T0 + timedelta(days=35)
D = 86400  # seconds
RUNNING, STOPPED, DRAFT = ExperimentStatus.RUNNING, ExperimentStatus.STOPPED, ExperimentStatus.DRAFT
EXPECTED_TEAMS = {
    "growth": {
        "changes": 6,
        "experiments_started": 2,
        "experiments_stopped": 2,
        "median_days_to_decision": 7.0,
        "overrides_created": 2,
        "overrides_expired": 1,
    },
    "pricing": {
        "changes": 2,
        "experiments_started": 0,
        "experiments_stopped": 0,
        "median_days_to_decision": None,
        "overrides_created": 1,
        "overrides_expired": 1,
    },
    "unowned": {
        "changes": 2,
        "experiments_started": 1,
        "experiments_stopped": 0,
        "median_days_to_decision": None,
        "overrides_created": 0,
        "overrides_expired": 0,
    },
}
EXPECTED_USAGE = [
    {
        "day": (T0 + timedelta(days=8)).date().isoformat(),
        "source": "loadgen",
        "exposures": 30,
        "experiments": 1,
    },
    {"day": (T0 + timedelta(days=9)).date().isoformat(), "source": "sdk", "exposures": 5, "experiments": 1},
    {
        "day": (T0 + timedelta(days=9)).date().isoformat(),
        "source": "service",
        "exposures": 20,
        "experiments": 2,
    },
]


def registry_records() -> list[RegistryRecord]:
    updated = RegistryChange.UPDATED
    return [
        record(experiment("a", 1, DRAFT, owner="growth"), at=T0),
        record(experiment("a", 2, RUNNING, owner="growth"), updated, at=T0, seconds=8 * D),
        record(experiment("a", 3, STOPPED, owner="growth"), updated, at=T0, seconds=18 * D),
        record(experiment("b", 1, RUNNING, owner="growth"), at=T0, seconds=9 * D),
        record(experiment("b", 2, STOPPED, owner="growth"), updated, at=T0, seconds=13 * D),
        record(experiment("c", 1, RUNNING, owner="pricing"), at=T0, seconds=2 * D),
        record(experiment("c", 2, RUNNING, owner="pricing"), updated, at=T0, seconds=10 * D),
        record(experiment("d", 1, RUNNING), at=T0, seconds=20 * D),
        record(feature("feat"), at=T0, seconds=10 * D),
        record(override("a", "u1", expires_at=T0 + timedelta(days=12)), at=T0, seconds=9 * D),
        record(override("a", "u2", expires_at=T0 + timedelta(days=38)), at=T0, seconds=15 * D),
        record(override("c", "u3", expires_at=T0 + timedelta(days=30)), at=T0, seconds=3 * D),
        record(override("c", "u4"), at=T0, seconds=11 * D),
    ]


def _exposure(i: int, experiment_key: str, day: int, source: ExposureSource) -> Exposure:
    base = make_exposure(f"u{i}", 0, T0 + timedelta(days=day, minutes=i), 0, False, experiment_key)
    return Exposure(**{**{f: getattr(base, f) for f in base.__struct_fields__}, "source": source})


def seed(warehouse: Warehouse) -> None:
    exposures = [_exposure(i, "a", 8, ExposureSource.LOADGEN) for i in range(30)]
    exposures += [_exposure(100 + i, "a" if i % 2 else "b", 9, ExposureSource.SERVICE) for i in range(20)]
    exposures += [_exposure(200 + i, "b", 9, ExposureSource.SDK) for i in range(5)]
    exposures += [_exposure(300 + i, "a", 1, ExposureSource.LOADGEN) for i in range(7)]  # before the window
    warehouse.insert_arrow("xp.registry", to_arrow(registry_records(), RegistryRecord))
    warehouse.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
    warehouse.insert_arrow("xp.exposures", to_arrow(exposures[:4], Exposure))  # re-sent: counted once
    counts = UsageCounts(clock=lambda: T0 + timedelta(days=9))  # usage by key id (two flushes: summed)
    counts.add("service_requests", "key-0000aaaa assign", 40)
    counts.add("dashboard_views", "key-0000bbbb health", 3)
    flush_usage(warehouse, counts)
    counts.add("service_requests", "key-0000aaaa assign", 2)
    flush_usage(warehouse, counts)


def test_activity_recovers_the_seeded_history_and_usage(warehouse: Warehouse) -> None:
    seed(warehouse)
    document = compute_activity(warehouse, since=SINCE, until=UNTIL)
    assert {
        t["team"]: {k: v for k, v in t.items() if k != "team"} for t in document["teams"]
    } == EXPECTED_TEAMS
    assert document["usage"] == EXPECTED_USAGE
    day = (T0 + timedelta(days=9)).date().isoformat()
    assert document["usage_by_key"] == [
        {"day": day, "kind": "dashboard_views", "subject": "key-0000bbbb health", "count": 3},
        {"day": day, "kind": "service_requests", "subject": "key-0000aaaa assign", "count": 42},
    ]
    assert sorted((d["experiment"], d["days_to_decision"]) for d in document["decisions"]) == [
        ("a", 10.0),
        ("b", 4.0),
    ]
    weeks = document["changes_per_week"]
    assert sum(w["changes"] for w in weeks) == 10 and all(
        datetime.fromisoformat(w["week"]).weekday() == 0 for w in weeks
    )
    # direct SQL: the changes in the window and the exposures per day and source
    (direct,) = warehouse.query_arrow(
        "SELECT count() AS n FROM xp.registry FINAL WHERE changed_at >= {s:DateTime64(3, 'UTC')}"
        " AND changed_at < {u:DateTime64(3, 'UTC')}",
        {"s": SINCE, "u": UNTIL},
    ).to_pylist()
    assert direct["n"] == sum(t["changes"] for t in document["teams"])
    by_day = warehouse.query_arrow(
        "SELECT toString(toDate(exposed_at)) AS day, toString(source) AS source, count() AS n"
        " FROM (SELECT DISTINCT exposure_id, exposed_at, source FROM xp.exposures)"
        " WHERE exposed_at >= {s:DateTime64(3, 'UTC')} GROUP BY day, source ORDER BY day, source",
        {"s": SINCE},
    ).to_pylist()
    assert [(r["day"], r["source"], r["n"]) for r in by_day] == [
        (u["day"], u["source"], u["exposures"]) for u in document["usage"]
    ]


def run_activity(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_STORE_WAIT_SECONDS": "10"}
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "activity", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def seed_home(home: Path) -> None:
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        seed(store)
    finally:
        store.close()


def test_xp_activity_json_and_table_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    seed_home(home)
    run = run_activity(home, "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--format", "json")
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    assert {
        t["team"]: {k: v for k, v in t.items() if k != "team"} for t in document["teams"]
    } == EXPECTED_TEAMS
    assert document["usage"] == EXPECTED_USAGE
    table = run_activity(home, "--since", SINCE.isoformat(), "--until", UNTIL.isoformat())
    assert table.returncode == 0, table.stderr
    assert "growth" in table.stdout and "7.0" in table.stdout
    assert "changed_by" not in run.stdout and "test" not in run.stdout  # teams, not people
    for args, words in (
        (("--since", "last tuesday"), "--since 'last tuesday' is not an ISO date"),
        (("--since", UNTIL.isoformat(), "--until", SINCE.isoformat()), "--until must be after --since"),
    ):
        bad = run_activity(home, *args)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
