"""The program view on chDB: a registry history and results snapshots seeded with known answers; `xp
program` (a subprocess; no broker needed) and the computation equal them and direct SQL.

Five experiments, created at T0. growth: ``g-ship`` (running T0+1d, stopped T0+15d, ship, two snapshots:
the newer counts), ``g-roll`` (running T0+2d, stopped T0+9d, rollback), ``g-three`` (three variations,
decision about the second treatment, stopped T0+20d); search: ``s-flat`` (running T0+3d, stopped T0+17d,
no decision recorded); ``s-live`` is still running (not finished, not shown). Each snapshot's conversion
sums come from seeded binomial draws; its stored estimate and interval are made-up markers (what the
experiment's own analysis said) so the test can tell them from the meta-analysis's recomputed lifts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jobs.program import compute_program
from jobs.results.snapshots import results_table
from schemas import RegistryChange, RegistryRecord
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.unit.registry.helpers import experiment, record
from xpcore.config import WarehouseSettings
from xpcore.errors import ValidationError
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 1, tzinfo=UTC)
D = 86400
RUNNING, STOPPED = ExperimentStatus.RUNNING, ExperimentStatus.STOPPED
PRIMARY = {"primary": ["conversion"], "secondary": ["revenue"]}
# experiment → (team, decision metadata, started day, stopped day, variations, conversion rates)
SEEDED: dict[str, tuple[str, dict[str, str] | None, int, int | None, int, tuple[float, ...]]] = {
    "g-ship": ("growth", {"outcome": "ship", "variation": "k1"}, 1, 15, 2, (0.10, 0.12)),
    "g-roll": ("growth", {"outcome": "rollback"}, 2, 9, 2, (0.10, 0.095)),
    "g-three": ("growth", {"outcome": "ship", "variation": "k2"}, 4, 20, 3, (0.20, 0.21, 0.23)),
    "s-flat": ("search", None, 3, 17, 2, (0.05, 0.051)),
    "s-live": ("search", None, 5, None, 2, (0.05, 0.05)),
}
UNITS = 4000


def registry_records() -> list[RegistryRecord]:
    records = []
    for key, (team, decision, start, stop, arms, _) in SEEDED.items():
        weights = tuple([1 / arms] * arms)
        meta: dict[str, Any] = {"owner": team, "metrics": PRIMARY}
        records.append(record(experiment(key, 1, ExperimentStatus.DRAFT, weights=weights, **meta), at=T0))
        records.append(
            record(
                experiment(key, 2, RUNNING, weights=weights, **meta),
                RegistryChange.UPDATED,
                at=T0,
                seconds=start * D,
            )
        )
        if stop is not None:
            if decision is not None:
                meta = {**meta, "decision": decision}
            records.append(
                record(
                    experiment(key, 3, STOPPED, weights=weights, **meta),
                    RegistryChange.UPDATED,
                    at=T0,
                    seconds=stop * D,
                )
            )
    return records


def _row(
    key: str, computed_at: datetime, metric: str, index: int, units: int, total: float, control: float = 0.0
) -> dict[str, Any]:
    """One xp.results row with real sums. The stored estimate is the sums' lift plus a marker (0.1 point
    per experiment's position), its interval ±4 points: what the experiment's own analysis reported, told
    apart from the meta-analysis's recomputed lift."""
    marker = None if index == 0 else total / control - 1 + (list(SEEDED).index(key) + 1) / 1000
    binomial = metric == "conversion"
    return {
        "computed_at": computed_at,
        "experiment_key": key,
        "metric": metric,
        "metric_type": "binomial" if binomial else "mean",
        "role": "primary" if binomial else "secondary",
        "method": "sequential",
        "variation_id": index,
        "variation_key": f"k{index}",
        "variation_name": f"Variation {index}",
        "units": units,
        "mean": total / units,
        "estimate": marker,
        "ci_low": None if marker is None else marker - 0.04,
        "ci_high": None if marker is None else marker + 0.04,
        "p_value": None if index == 0 else 0.5,
        "chance_to_win": None,
        "significant": False,
        "error": "",
        "srm_p_value": 0.5,
        "window_since": T0,
        "window_until": computed_at,
        "sum": total,
        "sum_squares": total if binomial else total * 20.0,
        "denominator_sum": 0.0,
        "denominator_sum_squares": 0.0,
        "cross_sum": 0.0,
    }


def snapshot_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(18_3)
    rows = []
    for key, (_, _, _, stop, _, rates) in SEEDED.items():
        at = T0 + timedelta(days=stop or 10, hours=1)
        counts = [float(rng.binomial(UNITS, rate)) for rate in rates]
        for index, conversions in enumerate(counts):
            rows.append(_row(key, at, "conversion", index, UNITS, conversions, counts[0]))
            rows.append(_row(key, at, "revenue", index, UNITS, conversions * 20.0, counts[0] * 20.0))
            if key == "g-ship":  # an older snapshot with other numbers: never shown
                older = at - timedelta(days=3)
                rows.append(_row(key, older, "conversion", index, 1000, 100.0 + index * 30, 100.0))
    return rows


def seed(warehouse: Warehouse) -> None:
    warehouse.insert_arrow("xp.registry", to_arrow(registry_records(), RegistryRecord))
    schema = results_table([]).schema
    warehouse.insert_arrow("xp.results", pa.Table.from_pylist(snapshot_rows(), schema=schema))


DIRECT_LIFTS = """
WITH latest AS (
    SELECT experiment_key, max(computed_at) AS at FROM xp.results GROUP BY experiment_key
),
arms AS (
    SELECT r.experiment_key AS experiment, r.variation_key AS variation, r.units AS n, r.sum / r.units AS p,
           (r.sum - r.sum * r.sum / r.units) / (r.units - 1) AS s2, r.estimate AS stored
    FROM xp.results AS r INNER JOIN latest AS l
      ON r.experiment_key = l.experiment_key AND r.computed_at = l.at
    WHERE r.metric = 'conversion'
)
SELECT t.experiment AS experiment, t.variation AS variation, t.stored AS stored, c.n + t.n AS units,
       t.p / c.p - 1 AS lift,
       t.s2 / (t.n * c.p * c.p) + t.p * t.p * c.s2 / (c.n * pow(c.p, 4)) AS variance
FROM arms AS t INNER JOIN arms AS c ON t.experiment = c.experiment AND c.variation = 'k0'
WHERE t.variation != 'k0'
ORDER BY experiment, variation
"""
CHOSEN = {"g-ship": "k1", "g-roll": "k1", "g-three": "k2", "s-flat": "k1"}


def _direct(warehouse: Warehouse) -> dict[str, dict[str, Any]]:
    rows = warehouse.query_arrow(DIRECT_LIFTS).to_pylist()
    return {r["experiment"]: r for r in rows if CHOSEN.get(r["experiment"]) == r["variation"]}


def check_document(document: dict[str, Any], direct: dict[str, dict[str, Any]]) -> None:
    shown = {e["experiment"]: e for e in document["experiments"]}
    assert sorted(shown) == ["g-roll", "g-ship", "g-three", "s-flat"]  # s-live still runs
    for key, row in shown.items():
        team, decision, start, stop, _, _ = SEEDED[key]
        assert row["team"] == team
        assert row["decision"] == (decision["outcome"] if decision else "undecided")
        assert row["variation"] == CHOSEN[key]
        assert row["duration_days"] == pytest.approx(stop - start)  # type: ignore[operator]
        assert row["metric"] == "conversion" and row["error"] is None
        assert row["lift"] == pytest.approx(direct[key]["stored"])
        assert row["meta_lift"] == pytest.approx(direct[key]["lift"], rel=1e-9)
        assert row["meta_standard_error"] == pytest.approx(math.sqrt(direct[key]["variance"]), rel=1e-9)
    assert shown["g-ship"]["units"] == 2 * UNITS  # the newest snapshot, not the older one
    assert shown["g-three"]["units"] == 3 * UNITS
    teams = {t["team"]: t for t in document["teams"]}
    assert teams["growth"]["ship"] == 2 and teams["growth"]["rollback"] == 1
    assert teams["growth"]["win_rate"] == pytest.approx(2 / 3)
    assert teams["search"]["undecided"] == 1 and teams["search"]["win_rate"] is None
    assert teams["growth"]["lift"]["median"] == pytest.approx(
        sorted(direct[k]["stored"] for k in ("g-ship", "g-roll", "g-three"))[1]
    )
    meta = document["meta_analysis"]
    assert meta["metric"] == "conversion" and sorted(meta["included"]) == sorted(shown)
    weights = {k: 1 / d["variance"] for k, d in direct.items()}
    pooled = sum(w * direct[k]["lift"] for k, w in weights.items()) / sum(weights.values())
    q = sum(w * (direct[k]["lift"] - pooled) ** 2 for k, w in weights.items())
    assert meta["fixed_effect"]["estimate"] == pytest.approx(pooled, rel=1e-9)
    assert meta["fixed_effect"]["standard_error"] == pytest.approx(1 / math.sqrt(sum(weights.values())))
    assert meta["q"] == pytest.approx(q, rel=1e-9) and meta["q_df"] == 3
    assert meta["i_squared"] == pytest.approx(max(0.0, (q - 3) / q))


def test_program_equals_direct_sql(warehouse: Warehouse) -> None:
    seed(warehouse)
    check_document(compute_program(warehouse), _direct(warehouse))
    growth = compute_program(warehouse, team="growth", metric="revenue")
    assert [e["experiment"] for e in growth["experiments"]] == ["g-roll", "g-ship", "g-three"]
    assert {e["metric"] for e in growth["experiments"]} == {"revenue"}
    assert growth["meta_analysis"]["excluded"] == [], growth["meta_analysis"]
    assert growth["meta_analysis"]["metric"] == "revenue" and growth["meta_analysis"]["experiments"] == 3
    chosen = compute_program(warehouse, experiments=["g-ship", "s-flat"])
    assert chosen["meta_analysis"]["included"] == ["g-ship", "s-flat"]
    with pytest.raises(ValidationError, match="not a finished experiment: s-live"):
        compute_program(warehouse, experiments=["g-ship", "s-live"])


def run_program(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_STORE_WAIT_SECONDS": "10"}
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "program", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def seed_home(home: Path) -> dict[str, dict[str, Any]]:
    """Seed a store under ``home``; returns the direct-SQL lifts."""
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        seed(store)
        return _direct(store)
    finally:
        store.close()


def test_xp_program_json_table_csv_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "xp-home"
    direct = seed_home(home)
    run = run_program(home, "--format", "json")
    assert run.returncode == 0, run.stderr
    check_document(json.loads(run.stdout), direct)
    table = run_program(home)
    assert table.returncode == 0, table.stderr
    assert "g-three" in table.stdout and "Cochran" not in table.stdout and "I² =" in table.stdout
    as_csv = run_program(home, "--format", "csv", "--team", "search")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["experiment"] for r in rows] == ["s-flat"] and rows[0]["decision"] == "undecided"
    for args, words in (
        (("--experiments", "g-ship,nope"), "not a finished experiment: nope"),
        (("--experiments", " , "), "experiments must name at least one experiment"),
        (("--team", "x\x1b[31my"), "team must be a printable name"),
    ):
        bad = run_program(home, *args)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
