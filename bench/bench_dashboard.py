"""Dashboard API p95 on 10 M events, next to the bare warehouse queries behind each page (same run).

A fresh chDB store is filled FAST in SQL (INSERT … SELECT FROM numbers()): the example registry, 1 M
units exposed to `checkout-button` over the last hour (3 variations), EVENTS metric events (default 10 M)
in xp.events and their attributions in xp.attributed_events (the materialized views fill
xp.unit_exposures, xp.exposure_counts_minute and xp.unit_metric_state as in production), dead letters,
SNAPSHOTS results snapshots and the ETL's daily aggregates. Then, per page API, N requests in-process
(Starlette TestClient: no network) against the same queries run bare on the warehouse, and the results
page's first paint in headless Chromium (uvicorn on loopback).

    .venv/bin/python bench/bench_dashboard.py                      # 10 M events, 30 requests per API
    .venv/bin/python bench/bench_dashboard.py --events 1000000 --requests 10 --no-browser
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
    from jobs.results_store import compute_experiment_result, store_results

    snapshot = RegistrySnapshot.from_records(
        records_from_rows(warehouse.query_arrow(dashboard_query("registry_records")).to_pylist())
    )
    spec = snapshot.experiments[KEY]
    steps: dict[str, float] = {}
    started = time.perf_counter()
    for step in range(count):
        at = now - timedelta(minutes=(count - 1 - step) * 10)
        store_results(warehouse, [compute_experiment_result(warehouse, spec, until=at, computed_at=at)])
    steps["snapshots"] = time.perf_counter() - started
    started = time.perf_counter()
    rollup_experiments(
        warehouse, [spec], etl_range(now - timedelta(days=1), now + timedelta(minutes=1), now=now)
    )
    steps["etl"] = time.perf_counter() - started
    return steps


def measure_apis(
    settings: Any, warehouse: Any, repeat: int, results_repeat: int
) -> list[tuple[str, float, float, str]]:
    """(page API, p95 ms, baseline p95 ms, baseline) per page, measured alternately in the same run."""
    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from dashboards.queries import QueryRunner
    from jobs.results_store import compute_experiment_result, covariate_days_of, experiment_plan

    runner = QueryRunner(warehouse)
    since = datetime.now(UTC) - timedelta(minutes=60)
    health_queries: list[tuple[str, dict[str, Any]]] = [
        ("health_ingest_rate", {"since": since}),
        ("health_dead_letters", {"since": since}),
        ("health_exposures_per_minute", {"experiment": KEY, "since": since}),
        ("health_units_by_variation", {"experiment": KEY}),
        ("health_srm_over_time", {"experiment": KEY}),
        ("quality_open_alerts", {}),
    ]

    def bare(queries: list[tuple[str, dict[str, Any]]]) -> Callable[[], None]:
        def run() -> None:
            for name, params in queries:
                runner.run_optional(name, params)

        return run

    days = covariate_days_of(settings)
    rows = []
    for cache_seconds in (0.0, 3600.0):
        app = create_app(
            settings.model_copy(update={"dashboard_results_cache_seconds": cache_seconds}),
            warehouse,
            lag_monitor=False,
        )
        with TestClient(app) as client:
            spec = app.state.dashboard.registry.snapshot().experiments[KEY]

            context = app.state.dashboard
            plan = experiment_plan(context.registry.snapshot(), spec)

            def results_once(spec: Any = spec, plan: Any = plan) -> None:  # what `xp results` runs
                compute_experiment_result(warehouse, spec, plan=plan, covariate_days=days)

            def results_twice(spec: Any = spec, plan: Any = plan) -> None:
                results_once(spec, plan)
                results_once(spec, plan)

            cases: list[tuple[str, str, Callable[[], Any], str]] = [
                (
                    "experiments list",
                    "/api/experiments",
                    bare(
                        [
                            ("experiments_units", {}),
                            ("experiments_latest_results", {}),
                            ("quality_open_alerts", {}),
                        ]
                    ),
                    "its 3 queries",
                ),
                ("realtime health", f"/api/health?experiment={KEY}", bare(health_queries), "its 6 queries"),
                (
                    "results",
                    f"/api/experiments/{KEY}/results",
                    results_once,
                    "compute_experiment_result (= xp results)",
                ),
                (
                    "compare (1 experiment twice)",
                    f"/api/compare?keys={KEY},{KEY}",
                    results_twice,
                    "2 × compute_experiment_result",
                ),
                (
                    "data quality",
                    "/api/quality",
                    bare([("quality_history", {"since": since, "limit": 5000}), ("quality_open_alerts", {})]),
                    "its 2 queries",
                ),
                ("activity", "/api/audit", bare([("audit_changes", {"key": "", "limit": 500})]), "its query"),
                (
                    "export daily CSV",
                    f"/api/experiments/{KEY}/export/daily.csv",
                    bare([("export_daily_metrics", {"experiment": KEY, "limit": 50_000, "offset": 0})]),
                    "its query",
                ),
            ]
            if cache_seconds:
                cases = [c for c in cases if c[0] in ("results", "compare (1 experiment twice)")]
            for name, path, baseline, what in cases:
                assert client.get(path).status_code == 200, path  # warm-up
                baseline()
                api_samples: list[float] = []
                base_samples: list[float] = []
                computes = name.startswith(("results", "compare"))  # the baseline always computes
                for _ in range(results_repeat if computes else repeat):  # alternate: load hits both sides
                    api_samples += timed(functools.partial(client.get, path), 1)
                    base_samples += timed(baseline, 1)
                label = name + (
                    (" (cached)" if cache_seconds else " (cache off)")
                    if name in ("results", "compare (1 experiment twice)")
                    else ""
                )
                rows.append((label, p95(api_samples), p95(base_samples), what))
                print(f"| {label} | {rows[-1][1]:.0f} | {rows[-1][2]:.0f} | {what} |", flush=True)
    return rows


def first_paint(settings: Any, warehouse: Any, repeat: int = 5) -> tuple[float, float]:
    """Median first-contentful-paint and numbers-on-screen times (ms) of the results page."""
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
                page.goto(f"http://127.0.0.1:{port}/experiments/{KEY}")
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
    options = parser.parse_args()

    from dashboards.settings import DashboardSettings
    from xpstream.warehouse import open_warehouse

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as home:
        settings = DashboardSettings(home=Path(home), clickhouse_url=None, store_wait_seconds=0)
        warehouse = open_warehouse(settings)
        try:
            now = datetime.now(UTC)
            steps = generate(warehouse, units=options.units, events=options.events, now=now)
            steps |= snapshots_and_rollups(warehouse, options.snapshots, now)
            print("data: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()), flush=True)
            print(
                f"\n{options.events:,} events, {options.units:,} units;"
                f" p95 over {options.requests} requests\n"
            )
            print("| page API | p95 ms | bare warehouse p95 ms | baseline |")
            print("|---|---|---|---|")
            measure_apis(settings, warehouse, options.requests, options.results_requests)
            if not options.no_browser:
                paint, shown = first_paint(
                    settings.model_copy(update={"dashboard_results_cache_seconds": 0}), warehouse
                )
                print(
                    f"\nresults page: first contentful paint {paint:.0f} ms, numbers on screen {shown:.0f} ms"
                    " (median of 5, cache off)"
                )
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()
