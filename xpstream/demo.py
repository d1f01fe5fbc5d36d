"""`make demo`: the whole pipeline on the embedded defaults, visibly, with the contract commands.

1. `xp stack up` — a local Kafka broker (unless one runs already);
2. `xp experiments apply examples/experiments.yaml` — the demo experiments into the registry;
3. `xp loadgen --seed 42 --history-days 2` — simulated users meet the running experiments (with lift,
   invalid, duplicate and late records; every event the example catalog counts; two days of activity
   before each exposure, for CUPED) and their exposures and events go to Kafka. The seed is fixed, so a
   fresh store gives the same numbers every time; a store that already holds a demo run's units gets
   the next unused seed (the same ids again would be deduplicated away);
4. `xp stream run --until-idle` — validate, deduplicate, enrich, attribute, load into ClickHouse;
5. reconcile: what the tables gained equals what loadgen says it sent (exit 1 otherwise), then print
   counts per experiment and variation with `xp sql`;
6. `xp results` for each demo experiment, and how much CUPED narrowed checkout-button's intervals;
7. batch jobs: `xp jobs run etl`, `xp jobs run stats`, then `xp jobs run quality` (its summary);
8. `xp stack down` — only if the demo started the stack — then what each number means and what to
   open next.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from xpcore.config import CoreSettings, load_settings

__all__ = ["cuped_lines", "free_seed", "interval_widths", "main", "reconcile", "used_seeds"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "experiments.yaml"
TABLES = {"exposures": "xp.exposures", "events": "xp.events", "invalid": "xp.dead_letters"}
EXPERIMENT_KEYS = ("checkout-button", "pricing-page-annual-first", "search-ranking-v2")
DEFAULT_SEED = 42
"""The demo's traffic seed: fixed, so its output is reproducible (docs/decisions/0072)."""
LIFT = 0.2
HISTORY_DAYS = 2
"""Days of pre-exposure activity: enough for CUPED; with 3+ the quality volume check would judge the
demo's two-minute burst against quiet history days and call it a spike (a false alarm)."""
CUPED_EXPERIMENT = "checkout-button"


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


def used_seeds() -> set[int]:
    """Seeds of the loadgen units already in the store (unit ids are ``lg<seed>-<n>``)."""
    rows = json.loads(
        _xp(
            "sql",
            "SELECT DISTINCT toInt64OrZero(extract(unit_id, '^lg([0-9]+)-')) AS seed FROM xp.exposures "
            "WHERE startsWith(unit_id, 'lg')",
            "--format",
            "json",
            capture=True,
        )
    )
    return {int(row["seed"]) for row in rows}


def free_seed(requested: int, used: set[int]) -> int:
    """``requested``, or the next seed above it that no earlier run used."""
    seed = requested
    while seed in used:
        seed += 1
    return seed


def interval_widths(document: dict[str, Any]) -> dict[str, float]:
    """Mean width of the treatments' lift intervals per metric (metrics with no finite interval left out)."""
    widths: dict[str, float] = {}
    for metric in document["metrics"]:
        spans = [
            v["ci_high"] - v["ci_low"]
            for v in metric["variants"][1:]
            if v["ci_low"] is not None and v["ci_high"] is not None
        ]
        if spans:
            widths[metric["metric"]] = sum(spans) / len(spans)
    return widths


def cuped_lines(with_cuped: dict[str, Any], without: dict[str, Any]) -> list[str]:
    """One line per CUPED-adjusted metric: its interval width without and with CUPED."""
    adjusted = {m["metric"] for m in with_cuped["metrics"] if m["cuped"]["applied"]}
    before, after = interval_widths(without), interval_widths(with_cuped)
    lines = []
    for name in [m["metric"] for m in with_cuped["metrics"]]:
        if name in adjusted and name in before and name in after and before[name] > 0:
            change = 1 - after[name] / before[name]
            verdict = f"{change:.0%} narrower" if change >= 0 else f"{-change:.0%} wider"
            lines.append(
                f"   {name:<12} interval width {before[name]:.1%} → {after[name]:.1%} with CUPED ({verdict})"
            )
    return lines


def _show_cuped() -> None:
    """Results of the CUPED experiment with and without the adjustment, side by side."""
    documents = {
        flag: json.loads(_xp("results", CUPED_EXPERIMENT, flag, "--fresh", "--format", "json", capture=True))
        for flag in ("--cuped", "--no-cuped")
    }
    lines = cuped_lines(documents["--cuped"], documents["--no-cuped"])
    print(f"   CUPED on {CUPED_EXPERIMENT}: each unit's same metric over the {HISTORY_DAYS} days before its")
    print("   first exposure explains part of its variance, so the intervals narrow (same data, same lift):")
    for line in lines or ["   (no metric was adjusted: no unit had pre-exposure activity)"]:
        print(line, flush=True)


GUIDE = """
What the numbers mean
  units       units (users) in the variation: first exposed, counted once
  mean        the metric per unit (conversion: share that purchased; revenue: per unit; ratios: Σ/Σ)
  lift        relative change of the mean against control (the first row): +20% = 1.2 × control
  interval    where the true lift lies with 95% confidence; sequential intervals stay valid however
              often you look (checkout-button plans 30000 units); CUPED narrows them with pre-exposure data
  p-value     (after Holm's correction where configured) how surprising the difference is if there were
              none; "significant" in green = a real gain, red = a real loss (guardrails: higher is worse)
  SRM p       the split matches the configured weights unless it is below 0.001 (then: do not trust it)
  dead letters  every invalid record, with its reason: nothing is dropped silently
The demo gave every treatment +{lift:.0%} purchase probability and activity; refunds per unit and order
value unchanged: so conversion, revenue, add_to_cart and pageviews rise, average_order_value and
refund_rate do not.

Open next
  .venv/bin/xp dashboard serve      then http://127.0.0.1:8200/ (results, health, exports)
  .venv/bin/xp results checkout-button --segment country      the lift by country
  python: import xpstream; xpstream.connect().results("checkout-button")     docs/analysts.md
  docs/statistics.md (every formula), docs/loadgen.md (the simulation), docs/architecture.md
"""


def main(users: int = 20000, seed: int = DEFAULT_SEED) -> None:
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
        used = used_seeds()
        chosen = free_seed(seed, used)
        print(f"== 3. simulated traffic: {users} users, seed {chosen}", flush=True)
        if chosen != seed:
            print(
                f"   this store already holds a demo run with seed {seed}: using seed {chosen}, so results "
                "include every run's traffic (a fresh XP_HOME reproduces the first run's numbers)",
                flush=True,
            )
        report = json.loads(
            _xp(
                "loadgen",
                "--users",
                str(users),
                "--seed",
                str(chosen),
                "--history-days",
                str(HISTORY_DAYS),
                "--lift",
                str(LIFT),
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
            f"({report['history_events']} of the events before exposure; seed {report.get('seed')})",
            flush=True,
        )
        by_name = ", ".join(f"{n} {name}" for name, n in report["by_event_name"].items())
        print(f"   events by name: {by_name}", flush=True)
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
        print(f"== 6. results (loadgen gave every treatment a +{LIFT:.0%} lift)", flush=True)
        for experiment in EXPERIMENT_KEYS:
            _xp("results", experiment, "--fresh")  # the traffic just loaded, not values as of a refresh
        _show_cuped()
        print("== 7. batch jobs: rollups, a results snapshot, data quality", flush=True)
        _xp("jobs", "run", "etl")
        _xp("jobs", "run", "stats")
        _xp("jobs", "run", "quality")
    finally:
        if not started.already_running:
            stop_kafka(settings)
            print("== 8. stopped the local stack", flush=True)
    print(f"== demo done in {time.monotonic() - began:.1f}s", flush=True)
    print(GUIDE.format(lift=LIFT), flush=True)


if __name__ == "__main__":
    import argparse

    from xpcore.errors import XpError

    parser = argparse.ArgumentParser(description="xpstream's end-to-end demo (what `make demo` runs).")
    parser.add_argument("--users", type=int, default=20000, help="simulated users (default 20000)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"traffic seed (default {DEFAULT_SEED}: reproducible)"
    )
    arguments = parser.parse_args()
    try:
        main(users=arguments.users, seed=arguments.seed)
    except XpError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
