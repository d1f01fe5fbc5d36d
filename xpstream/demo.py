"""`make demo`: the whole pipeline on the embedded defaults, visibly, with the contract commands.

1. `xp stack up` — a local Kafka broker (unless one runs already);
2. `xp experiments apply examples/experiments.yaml` — the demo experiments into the registry;
3. `xp loadgen` — simulated users meet the running experiments (with lift, invalid, duplicate and late
   records) and their exposures and events go to Kafka;
4. `xp stream run --until-idle` — validate, deduplicate, enrich, attribute, load into ClickHouse;
5. reconcile: what the tables gained equals what loadgen says it sent (exit 1 otherwise), then print
   counts per experiment and variation with `xp sql`;
6. `xp results` for each demo experiment;
7. batch jobs: `xp jobs run etl`, `xp jobs run stats`, then `xp jobs run quality` (its summary);
8. `xp stack down` — only if the demo started the stack — and the dashboard URL to open next.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from xpcore.config import CoreSettings, load_settings

__all__ = ["main", "reconcile"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "experiments.yaml"
TABLES = {"exposures": "xp.exposures", "events": "xp.events", "invalid": "xp.dead_letters"}
EXPERIMENT_KEYS = ("checkout-button", "pricing-page-annual-first", "search-ranking-v2")


def _xp(*args: str, capture: bool = False) -> str:
    """Run one `xp` command like a user would; its output streams through unless captured."""
    if not capture:
        print(f"$ xp {' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args],
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"error: `xp {' '.join(args)}` failed with exit code {result.returncode}")
    return result.stdout or ""


def _table_counts() -> dict[str, int]:
    """Row counts of the contract tables (through `xp sql`, so the store is not held open)."""
    query = " UNION ALL ".join(  # the names come from the constant TABLES, never from input
        f"SELECT '{name}' AS name, count() AS n FROM {table}"  # nosec B608
        for name, table in TABLES.items()
    )
    rows = json.loads(_xp("sql", query, "--format", "json", capture=True))
    return {row["name"]: int(row["n"]) for row in rows}


def reconcile(report: dict[str, Any], before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Mismatches between what loadgen sent and what the tables gained (empty when they agree)."""
    problems = []
    for name in TABLES:
        gained = after.get(name, 0) - before.get(name, 0)
        if gained != int(report[name]):
            problems.append(f"{TABLES[name]} gained {gained} rows, loadgen sent {report[name]} {name}")
    return problems


def main(users: int = 20000) -> None:
    """Run the demo; exits non-zero on any failure or any count that does not reconcile."""
    from xpstream.stack import start_kafka, stop_kafka

    settings = load_settings(CoreSettings)
    began = time.monotonic()
    print(f"== 1. local stack under {settings.home.resolve()}", flush=True)
    started = start_kafka(settings)
    try:
        print(f"   Kafka {started.bootstrap} (pid {started.pid}, {started.seconds:.1f}s)", flush=True)
        print("== 2. experiments into the registry", flush=True)
        _xp("experiments", "apply", str(EXAMPLES), "--actor", "demo")
        before = _table_counts()
        print(f"== 3. simulated traffic: {users} users", flush=True)
        report = json.loads(
            _xp(
                "loadgen",
                "--users",
                str(users),
                "--lift",
                "0.2",
                "--invalid-fraction",
                "0.01",
                "--duplicate-fraction",
                "0.02",
                "--late-fraction",
                "0.05",
                "--format",
                "json",
                capture=True,
            )
        )
        print(
            f"   sent {report['exposures']} exposures, {report['events']} events, "
            f"{report['invalid']} invalid records, {report['duplicates']} duplicates "
            f"(seed {report.get('seed')})",
            flush=True,
        )
        print("== 4. stream: validate, deduplicate, enrich, attribute, load", flush=True)
        _xp("stream", "run", "--until-idle", "3")
        print("== 5. reconcile and report", flush=True)
        problems = reconcile(report, before, _table_counts())
        if problems:
            for problem in problems:
                print(f"   MISMATCH {problem}", flush=True)
            raise SystemExit(1)
        print(
            "   every count reconciles: the tables gained exactly the valid, unique records loadgen sent "
            "and one dead letter per invalid record",
            flush=True,
        )
        _xp(
            "sql",
            "SELECT experiment_key, variation_key, count() AS exposures, uniqExact(unit_id) AS units "
            "FROM xp.exposures GROUP BY experiment_key, variation_key ORDER BY experiment_key, variation_key",
        )
        _xp(
            "sql",
            "SELECT reason, count() AS dead_letters FROM xp.dead_letters GROUP BY reason ORDER BY reason",
        )
        print("== 6. results (sequential intervals; loadgen gave every treatment a +20% lift)", flush=True)
        for experiment in EXPERIMENT_KEYS:
            _xp("results", experiment)
        print("== 7. batch jobs: rollups, a results snapshot, data quality", flush=True)
        _xp("jobs", "run", "etl")
        _xp("jobs", "run", "stats")
        _xp("jobs", "run", "quality")
    finally:
        if not started.already_running:
            stop_kafka(settings)
            print("== 8. stopped the local stack", flush=True)
    print(f"== demo done in {time.monotonic() - began:.1f}s", flush=True)
    print(
        "\nSee it in the browser: run `.venv/bin/xp dashboard serve` (or `.venv/bin/xp up` for everything)\n"
        "and open http://127.0.0.1:8200/",
        flush=True,
    )


if __name__ == "__main__":
    import argparse

    from xpcore.errors import XpError

    parser = argparse.ArgumentParser(description="xpstream's end-to-end demo (what `make demo` runs).")
    parser.add_argument("--users", type=int, default=20000, help="simulated users (default 20000)")
    arguments = parser.parse_args()
    try:
        main(users=arguments.users)
    except XpError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
