"""Dashboard API p95 on 10 M events, next to the bare warehouse queries behind each page (same run).

A fresh chDB store is filled FAST in SQL (INSERT … SELECT FROM numbers()): the example registry, 1 M
units exposed to `checkout-button` over the last hour (3 variations), EVENTS metric events (default 10 M)
in xp.events and their attributions in xp.attributed_events (the materialized views fill
xp.unit_exposures, xp.exposure_counts_minute and xp.unit_metric_state as in production), dead letters,
SNAPSHOTS results snapshots (the newest with the experiment's analysis plan, as `xp jobs run stats` stores
it) and the ETL's daily aggregates. Then, per page API, N requests in-process (Starlette TestClient: no
network) alternately with its baseline run bare on the warehouse: the queries the page ran per request
before the ingest counter (migration 0008) and the units-so-far copy, or `compute_experiment_result` for
results; then each page query alone; a results view with a window (computed in the background: the first
request's 202, the polls, the time to the result, re-opening it, next to the bare computation); and the
results page's first paint in headless Chromium (uvicorn on loopback), with the stored snapshot and with a
window.

    .venv/bin/python bench/bench_dashboard.py                      # 10 M events, 30 requests per API
    .venv/bin/python bench/bench_dashboard.py --events 1000000 --requests 10 --no-browser
    .venv/bin/python bench/bench_dashboard.py --events 1000000 --units 100000 --only-window-views \
        --results-requests 5 --no-browser                          # the window view alone, 1 M events
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KEY = "checkout-button"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(function: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def generate(warehouse: Any, *, units: int, events: int, now: datetime) -> dict[str, float]:
    """Fill the store in SQL; returns seconds per step."""
    from assignment.authoring import load_registry_file
    from assignment.registry import RegistrySnapshot
    from assignment.registry_changes import plan_changes
    from dashboards.sample_data import EXAMPLES
    from schemas import RegistryRecord
    from schemas.arrow import to_arrow

    steps: dict[str, float] = {}
    records = plan_changes(RegistrySnapshot(), load_registry_file(EXAMPLES), actor="bench", now=now)
    warehouse.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
    start = now - timedelta(hours=1)
    params = {"start": start, "units": units}
    variation = "toUInt16(cityHash64(concat('u', toString(number % {units:UInt64}))) % 3)"
    exposed_at = (
        "{start:DateTime64(3, 'UTC')}"
        " + toIntervalMillisecond((number % {units:UInt64}) * 3599000 DIV {units:UInt64})"
    )
    started = time.perf_counter()
    warehouse.command(
        f"""INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
            variation_key, overridden, source, attributes, exposed_at, schema_version)
        SELECT concat('x', toString(number)), concat('u', toString(number)), 'id', '{KEY}', {variation},
            concat('v', toString({variation})), false, 'loadgen', map(), {exposed_at}, 1
        FROM numbers({{units:UInt64}})""",
        params,
    )
    steps["exposures"] = time.perf_counter() - started
    event_name = "['pageview', 'pageview', 'pageview', 'add_to_cart', 'purchase'][number % 5 + 1]"
    value = "if(number % 5 = 4, toNullable(10 + (cityHash64(number) % 7000) / 100), NULL)"
    occurred = f"({exposed_at}) + toIntervalSecond(1 + number % 600)"
    started = time.perf_counter()
    warehouse.command(
        f"""INSERT INTO xp.events
            (event_id, unit_id, event_name, value, properties, occurred_at, schema_version)
        SELECT concat('e', toString(number)), concat('u', toString(number % {{units:UInt64}})), {event_name},
            {value}, map(), {occurred}, 1
        FROM numbers({events})""",
        params,
    )
    steps["events"] = time.perf_counter() - started
    started = time.perf_counter()
    warehouse.command(
        f"""INSERT INTO xp.attributed_events
            (event_id, unit_id, experiment_key, variation_id, event_name, value, occurred_at,
             first_exposed_at)
        SELECT concat('e', toString(number)), concat('u', toString(number % {{units:UInt64}})), '{KEY}',
            {variation}, {event_name}, {value}, {occurred}, {exposed_at}
        FROM numbers({events})""",
        params,
    )
    steps["attributions"] = time.perf_counter() - started
    warehouse.command(
        """INSERT INTO xp.dead_letters (dead_letter_id, reason, detail, record_kind, source_topic, original,
            received_at, schema_version)
        SELECT concat('d', toString(number)), ['invalid_json', 'schema_violation'][number % 2 + 1], 'bench',
            'metric_event', 'xp.events', '{',
            {start:DateTime64(3, 'UTC')} + toIntervalSecond(number % 3600), 1
        FROM numbers(20000)""",
        {"start": start},
    )
    return steps


def snapshots_and_rollups(warehouse: Any, count: int, now: datetime) -> dict[str, float]:
    from assignment.registry import RegistrySnapshot
    from dashboards.queries import dashboard_query
    from dashboards.registry_view import records_from_rows
    from jobs.etl import etl_range, rollup_experiments
    from jobs.results.compute import compute_experiment_result, experiment_plan
    from jobs.results.snapshots import store_results

    snapshot = RegistrySnapshot.from_records(
        records_from_rows(warehouse.query_arrow(dashboard_query("registry_records")).to_pylist())
    )
    spec = snapshot.experiments[KEY]
    steps: dict[str, float] = {}
    started = time.perf_counter()
    for step in range(count):
        at = now - timedelta(minutes=(count - 1 - step) * 10)
        plan = experiment_plan(snapshot, spec) if step == count - 1 else None  # newest: as the stats job
        result = compute_experiment_result(warehouse, spec, until=at, computed_at=at, plan=plan)
        store_results(warehouse, [result])
    steps["snapshots"] = time.perf_counter() - started
    started = time.perf_counter()
    rollup_experiments(
        warehouse, [spec], etl_range(now - timedelta(days=1), now + timedelta(minutes=1), now=now)
    )
    steps["etl"] = time.perf_counter() - started
    return steps


OLD_INGEST_RATE = """
SELECT toDateTime64(toStartOfMinute(ingested_at), 3, 'UTC') AS minute, 'events' AS kind, count() AS records
FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')} GROUP BY minute
UNION ALL
SELECT toDateTime64(toStartOfMinute(ingested_at), 3, 'UTC') AS minute, 'exposures' AS kind, count() AS records
FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')} GROUP BY minute
"""
"""health_ingest_rate.sql before migration 0008: a scan of ingested_at over all of xp.events."""


def measure_apis(
    settings: Any, warehouse: Any, repeat: int, results_repeat: int
) -> list[tuple[str, float, float, str]]:
    """(page API, p95 ms, baseline p95 ms, baseline) per page, measured alternately in the same run."""
    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from dashboards.queries import QueryRunner, dashboard_query
    from jobs.results.compute import compute_experiment_result, experiment_plan

    runner = QueryRunner(warehouse)
    now = datetime.now(UTC)
    since = now - timedelta(minutes=60)
    health_before: list[tuple[str, dict[str, Any]]] = [
        (OLD_INGEST_RATE, {"since": since}),
        ("health_dead_letters", {"since": since}),
        ("health_exposures_per_minute", {"experiment": KEY, "since": since}),
        ("health_units_by_variation", {"experiment": KEY}),
        ("health_srm_over_time", {"experiment": KEY}),
        ("quality_open_alerts", {}),
    ]
    list_before: list[tuple[str, dict[str, Any]]] = [
        ("experiments_units", {}),
        ("experiments_latest_results", {}),
        ("quality_open_alerts", {}),
    ]

    def bare(queries: list[tuple[str, dict[str, Any]]]) -> Callable[[], None]:
        def run() -> None:
            for name, params in queries:
                if name.lstrip().startswith("SELECT"):
                    runner.sql(name, params)
                else:
                    runner.run_optional(name, params)

        return run

    days = settings.etl_covariate_days
    rows = []
    variants = (
        ("", {"dashboard_results_max_age_seconds": 3600.0}),
        (" while a background refresh runs", {"dashboard_results_max_age_seconds": 0.0}),
    )
    for suffix, update in variants:
        app = create_app(settings.model_copy(update=update), warehouse, lag_monitor=False)
        with TestClient(app) as client:
            context = app.state.dashboard
            spec = context.registry.snapshot().experiments[KEY]
            plan = experiment_plan(context.registry.snapshot(), spec)

            def results_once(spec: Any = spec, plan: Any = plan) -> None:  # what `xp results` runs
                compute_experiment_result(warehouse, spec, plan=plan, covariate_days=days)

            results = f"/api/experiments/{KEY}/results"
            cases: list[tuple[str, str, Callable[[], Any], str, bool]] = [
                ("experiments list", "/api/experiments", bare(list_before), "its 3 queries before", False),
                ("realtime health", f"/api/health?experiment={KEY}", bare(health_before), "6 before", False),
                ("results (stored snapshot)", results, results_once, "compute_experiment_result", True),
                ("compare (snapshots)", f"/api/compare?keys={KEY},{KEY}", results_once, "1 × compute", True),
                (
                    "data quality",
                    "/api/quality",
                    bare([("quality_history", {"since": since, "limit": 5000}), ("quality_open_alerts", {})]),
                    "its 2 queries",
                    False,
                ),
                (
                    "activity",
                    "/api/audit",
                    bare([("audit_changes", {"key": "", "limit": 500})]),
                    "its query",
                    False,
                ),
                (
                    "export daily CSV",
                    f"/api/experiments/{KEY}/export/daily.csv",
                    bare([("export_daily_metrics", {"experiment": KEY, "limit": 50_000, "offset": 0})]),
                    "its query",
                    False,
                ),
            ]
            if suffix == " while a background refresh runs":
                cases = [c for c in cases if c[0] in ("results (stored snapshot)", "compare (snapshots)")]
            for name, path, baseline, what, computes in cases:
                assert client.get(path).status_code == 200, path  # warm-up
                baseline()
                api_samples: list[float] = []
                base_samples: list[float] = []
                sources: set[str] = set()
                requests = repeat
                for i in range(max(requests, results_repeat if computes else repeat)):  # alternate: same load
                    if i < requests:
                        started = time.perf_counter()
                        response = client.get(path)
                        api_samples.append((time.perf_counter() - started) * 1000)
                        if path.startswith(results):
                            sources.add(response.json()["shown"]["source"])
                    if i < (results_repeat if computes else repeat):
                        base_samples += timed(baseline, 1)
                label = name + suffix + (f" [shown: {', '.join(sorted(sources))}]" if sources else "")
                rows.append((label, p95(api_samples), p95(base_samples), what))
                print(
                    f"| {label} | {rows[-1][1]:.0f} (n={len(api_samples)}) | {rows[-1][2]:.0f}"
                    f" (n={len(base_samples)}) | {what} |",
                    flush=True,
                )
            context.background.wait(600)
            context.units.wait(600)

    print("\n| page query alone | p95 ms |\n|---|---|")
    singles: list[tuple[str, str, dict[str, Any]]] = [
        ("health_ingest_rate before 0008 (scan of xp.events)", OLD_INGEST_RATE, {"since": since}),
        (
            "health_ingest_rate (xp.ingest_counts_minute)",
            dashboard_query("health_ingest_rate"),
            {"since": since},
        ),
        ("experiments_units (units so far, exact)", dashboard_query("experiments_units"), {}),
        ("health_units_by_variation", dashboard_query("health_units_by_variation"), {"experiment": KEY}),
        (
            "results_latest_snapshot",
            dashboard_query("results_latest_snapshot"),
            {"experiment": KEY, "method": "sequential"},
        ),
        ("registry_records", dashboard_query("registry_records"), {}),
    ]
    for label, sql, params in singles:
        samples = timed(functools.partial(runner.sql, sql, params), repeat)
        print(f"| {label} | {p95(samples):.0f} |", flush=True)
    return rows


def measure_window_views(settings: Any, warehouse: Any, repeat: int) -> None:
    """A results view with a window (``?until=``), each time a new one: the first request (202 at once),
    the polls while it computes, the time until the result is there (polling every 0.1 s), re-opening
    it (kept: 200), alternately with the bare `compute_experiment_result` of the same window."""
    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from jobs.results.compute import compute_experiment_result, experiment_plan

    app = create_app(settings, warehouse, lag_monitor=False)
    first, polls, ready, reopen, bare = [], [], [], [], []
    statuses: set[int] = set()
    with TestClient(app) as client:
        context = app.state.dashboard
        snapshot = context.registry.snapshot()
        spec = snapshot.experiments[KEY]
        plan = experiment_plan(snapshot, spec)
        url = f"/api/experiments/{KEY}/results"
        base = datetime.now(UTC) + timedelta(minutes=5)
        days = settings.etl_covariate_days
        for i in range(repeat):
            until = base + timedelta(seconds=i)
            params = {"until": until.isoformat()}
            started = time.perf_counter()
            response = client.get(url, params=params)
            first.append((time.perf_counter() - started) * 1000)
            statuses.add(response.status_code)
            while response.status_code == 202:
                time.sleep(0.1)
                asked = time.perf_counter()
                response = client.get(url, params=params)
                polls.append((time.perf_counter() - asked) * 1000)
            assert response.status_code == 200, response.text
            ready.append((time.perf_counter() - started) * 1000)
            reopen += timed(functools.partial(client.get, url, params=params), 3)
            bare += timed(
                functools.partial(
                    compute_experiment_result, warehouse, spec, until=until, plan=plan, covariate_days=days
                ),
                1,
            )
    print(
        f"\n| results with a window (a new one each time, n={repeat}) | ms |\n|---|---|\n"
        f"| first request, p95 (answers {sorted(statuses)}) | {p95(first):.0f} |\n"
        f"| each poll while it computes, p95 (n={len(polls)}) | {p95(polls):.0f} |\n"
        f"| time to the result (polling every 0.1 s), median | {statistics.median(ready):.0f} |\n"
        f"| re-opening the same view (kept result), p95 (n={len(reopen)}) | {p95(reopen):.0f} |\n"
        f"| baseline: bare compute_experiment_result, same window, median | {statistics.median(bare):.0f} |",
        flush=True,
    )


def first_paint(settings: Any, warehouse: Any, query: str = "", repeat: int = 5) -> tuple[float, float]:
    """Median first-contentful-paint and numbers-on-screen times (ms) of the results page (``query``:
    its query string, e.g. a window that makes it compute)."""
    import socket

    import uvicorn
    from playwright.sync_api import sync_playwright

    from dashboards.app import create_app

    app = create_app(settings, warehouse, lag_monitor=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    paints, loaded = [], []
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for _ in range(repeat + 1):
                started = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/experiments/{KEY}{query}")
                page.wait_for_selector("body[data-loaded=true]", timeout=120_000)
                loaded.append((time.perf_counter() - started) * 1000)
                paints.append(
                    page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                    )
                )
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return statistics.median(paints[1:]), statistics.median(loaded[1:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument(
        "--results-requests", type=int, default=5, help="requests for uncached results (each computes)"
    )
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--only-window-views",
        action="store_true",
        help="measure only the results view with a window (202, polls, time to result)",
    )
    parser.add_argument(
        "--no-window-paint",
        action="store_true",
        help="skip the browser's results page with a window (6 computations: minutes at 10 M events)",
    )
    options = parser.parse_args()

    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as home:
        settings = DashboardSettings(home=Path(home), clickhouse_url=None, store_wait_seconds=0)
        warehouse = open_warehouse(settings)
        try:
            now = datetime.now(UTC)
            steps = generate(warehouse, units=options.units, events=options.events, now=now)
            steps |= snapshots_and_rollups(warehouse, options.snapshots, now)
            print("data: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()), flush=True)
            print(f"load average before measuring: {Path('/proc/loadavg').read_text().strip()}")
            print(
                f"\n{options.events:,} events, {options.units:,} units;"
                f" p95 over {options.requests} requests\n"
            )
            print("| page API | p95 ms | bare warehouse p95 ms | baseline |")
            print("|---|---|---|---|")
            if not options.only_window_views:
                measure_apis(settings, warehouse, options.requests, options.results_requests)
            measure_window_views(settings, warehouse, options.results_requests)
            if not options.no_browser:
                until = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
                paints = [("stored snapshot", "")]
                if not options.no_window_paint:  # the first load computes; the 5 measured reuse it
                    paints.append(("with a window: computed in the background", f"?until={until}"))
                for label, query in paints:
                    paint, shown = first_paint(
                        settings.model_copy(update={"dashboard_results_max_age_seconds": 3600}),
                        warehouse,
                        query,
                    )
                    print(
                        f"results page ({label}): first contentful paint {paint:.0f} ms,"
                        f" numbers on screen {shown:.0f} ms (median of 5 after a first load)",
                        flush=True,
                    )
            print(f"load average at the end: {Path('/proc/loadavg').read_text().strip()}")
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()
