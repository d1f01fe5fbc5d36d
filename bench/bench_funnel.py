"""Funnel API p95 (the results page's funnel section, and the same query for the last hour as a health-page
view would ask) on EVENTS events, next to a bare scan of the same step events (same run).

The store is filled exactly as bench/bench_dashboard.py fills it (its ``generate``: the example registry —
whose checkout-button declares pageview → add_to_cart → purchase within 24 h — 1 M units exposed over the
last hour, EVENTS attributed events). Then, alternately, N requests to ``GET /api/experiments/KEY/funnel``
(Starlette TestClient, in-process) and N runs of the baseline: ``SELECT variation_id, event_name,
uniqExact(unit_id)`` over the experiment's step events (``FINAL``), i.e. the bare scan a funnel cannot do
without.

The realtime funnel of the health page (the same computation for the units first exposed in the last
hour, served from a copy refreshed in the background) is timed after its first copy has landed: the time to
that first copy is printed too.

    .venv/bin/python bench/bench_funnel.py                          # 10 M events, 10 requests each
    .venv/bin/python bench/bench_funnel.py --events 1000000 --units 100000 --requests 10
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

KEY = "checkout-button"
BASELINE = """
SELECT variation_id, event_name, uniqExact(unit_id) AS units
FROM xp.attributed_events FINAL
WHERE experiment_key = {experiment:String} AND event_name IN {steps:Array(String)}
GROUP BY variation_id, event_name
"""


def _dashboard_bench() -> Any:
    path = Path(__file__).with_name("bench_dashboard.py")
    spec = importlib.util.spec_from_file_location("bench_dashboard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dashboard"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10)
    options = parser.parse_args()

    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    bench = _dashboard_bench()
    with tempfile.TemporaryDirectory(prefix="bench-funnel-") as home:
        settings = DashboardSettings(home=Path(home), clickhouse_url=None, store_wait_seconds=0)
        warehouse = open_warehouse(settings)
        try:
            now = datetime.now(UTC)
            started = time.perf_counter()
            bench.generate(warehouse, units=options.units, events=options.events, now=now)
            print(
                f"filled {options.events:,} events / {options.units:,} units"
                f" in {time.perf_counter() - started:.1f} s"
            )
            app = create_app(settings, warehouse, lag_monitor=False)
            hour = quote((datetime.now(UTC) - timedelta(hours=1, minutes=1)).isoformat())
            views = {"whole experiment": "", "last hour": f"?since={hour}"}
            params = {"experiment": KEY, "steps": ["pageview", "add_to_cart", "purchase"]}
            samples: dict[str, list[float]] = {name: [] for name in views} | {"baseline scan": []}
            with TestClient(app) as client:
                first = client.get(f"/api/experiments/{KEY}/funnel")
                assert first.status_code == 200, first.text
                assert first.json()["funnel"]["variations"][0]["steps"][0]["units"] > 0
                for _ in range(options.requests):
                    for name, query in views.items():
                        t = time.perf_counter()
                        answer = client.get(f"/api/experiments/{KEY}/funnel{query}")
                        samples[name].append((time.perf_counter() - t) * 1000)
                        assert answer.status_code == 200, answer.text
                    t = time.perf_counter()
                    warehouse.query_arrow(BASELINE, params)
                    samples["baseline scan"].append((time.perf_counter() - t) * 1000)
                # The health page's realtime funnel (last hour): the first request starts the computation
                # (202 until it lands); later ones answer from the copy while it is recomputed in the
                # background every XP_DASHBOARD_REALTIME_FUNNEL_SECONDS.
                realtime = f"/api/experiments/{KEY}/funnel/realtime?window=hour"
                t = time.perf_counter()
                while (answer := client.get(realtime)).status_code == 202:
                    time.sleep(0.05)
                assert answer.status_code == 200, answer.text
                first_copy = time.perf_counter() - t
                samples["realtime (copy)"] = []
                for _ in range(options.requests * 10):
                    t = time.perf_counter()
                    answer = client.get(realtime)
                    samples["realtime (copy)"].append((time.perf_counter() - t) * 1000)
                    assert answer.status_code == 200, answer.text
                print(f"realtime funnel (last hour): first copy computed in {first_copy:.1f} s")
            for name, values in samples.items():
                print(
                    f"{name:>18}: p50 {sorted(values)[len(values) // 2]:8.1f} ms"
                    f"   p95 {bench.p95(values):8.1f} ms"
                )
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()
