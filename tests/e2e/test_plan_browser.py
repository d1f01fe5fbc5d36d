"""The planning section of the experiment's page in headless Chromium: the numbers on screen equal
`xp plan KEY --format json` (run as a subprocess on the same store before the app opens it: the CLI end to
end), a new MDE recomputes them, and bad API input is a 400 / 404.

No broker: the registry is read from the warehouse's copy (the CLI says so; the dashboards read it there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from assignment.authoring import parse_registry_document
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from schemas import RegistryRecord
from schemas.arrow import to_arrow
from schemas.records import MetricEvent
from tests.fixtures.http import serve_in_thread
from tests.fixtures.kafka import free_ports
from xpcore.config import WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
KEY = "plan-exp"
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
DOCUMENT = {
    "experiments": [
        {
            "key": KEY,
            "status": "draft",
            "variations": ["a", "b", "c"],
            "analysis": {"method": "group_sequential_pocock", "planned_units": 1000, "planned_looks": 3},
        }
    ]
}

if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


def _seed(home: Path) -> None:
    records = plan_changes(
        RegistrySnapshot(),
        parse_registry_document(DOCUMENT, "x.yaml"),
        actor="t",
        now=UNTIL - timedelta(days=20),
    )
    rng = np.random.default_rng(86)
    events = []
    for u in range(600):
        first = UNTIL - timedelta(days=14) + timedelta(seconds=int(rng.integers(13 * 86400)))
        for j in range(1 + int(rng.poisson(2))):
            at = first + timedelta(minutes=j)
            events.append(
                MetricEvent(event_id=f"p{u}-{j}", unit_id=f"u{u}", event_name="pageview", occurred_at=at)
            )
        if u % 4 == 0:
            at = first + timedelta(minutes=30)
            value = float(rng.integers(5, 50))
            events.append(
                MetricEvent(
                    event_id=f"b{u}", unit_id=f"u{u}", event_name="purchase", value=value, occurred_at=at
                )
            )
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
        store.insert_arrow("xp.events", to_arrow(events, MetricEvent))
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("plan-e2e") / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}
    run = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "plan", KEY, "--until", UNTIL.isoformat(), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return home, json.loads(run.stdout)


@pytest.fixture(scope="module")
def url(seeded: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings

    settings = DashboardSettings(home=seeded[0], clickhouse_url=None, store_wait_seconds=0)
    warehouse = open_warehouse(settings)
    try:
        with serve_in_thread(create_app(settings, warehouse, lag_monitor=False)) as served:
            yield served
    finally:
        warehouse.close()


@pytest.fixture
def page(url: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 2200})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        try:
            yield page
        finally:
            browser.close()
        assert errors == [], errors


def _check_table(page: Any, document: dict[str, Any]) -> int:
    shown = 0
    for metric in document["metrics"]:
        for row in metric["methods"]:
            cells = page.locator(
                f"#plan-table tr[data-metric='{metric['metric']}'][data-method='{row['method']}']"
            )

            def cell(field: str, cells: Any = cells) -> str:
                return str(cells.locator(f"[data-field='{field}']").inner_text())

            assert cell("units_per_variation") == f"{row['units_per_variation']:,}"
            assert cell("total_units") == f"{row['total_units']:,}"
            assert cell("days") == str(row["days"])
            assert cell("power") == f"{row['power']:.3f}"
            shown += 1
    return shown


def test_plan_on_the_page_equals_xp_plan_json(page: Any, url: str, seeded: Any) -> None:
    document = seeded[1]
    assert document["variations"] == 3 and document["planned_looks"] == 3
    assert document["recommended_planned_units"] is not None
    page.goto(f"{url}/experiments/{KEY}?until={quote(UNTIL.isoformat())}")
    page.locator("#plan[data-loaded='true']").wait_for(timeout=60_000)
    assert _check_table(page, document) == 12  # conversion, revenue, pageviews × 4 methods
    assert page.inner_text("#plan-yaml").endswith(document["yaml"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#plan").screenshot(path=str(ARTIFACTS / "plan.png"))

    # A 10 % lift needs about a quarter of the units of a 5 % lift.
    page.fill("#plan-mde", "10")
    page.click("#plan-form button")
    page.locator("#plan[data-loaded='true']").wait_for(timeout=60_000)
    answer = httpx.get(f"{url}/api/experiments/{KEY}/plan", params={"mde": "0.1", "until": UNTIL.isoformat()})
    assert answer.status_code == 200
    wider = answer.json()["plan"]
    _check_table(page, wider)
    first, second = document["metrics"][0]["methods"][0], wider["metrics"][0]["methods"][0]
    assert 3.5 < first["units_per_variation"] / second["units_per_variation"] < 4.5


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"/api/experiments/{KEY}/plan?mde=abc", 400, "mde must be a number"),
        (f"/api/experiments/{KEY}/plan?mde=nan", 400, "mde must be a finite number"),
        (f"/api/experiments/{KEY}/plan?mde=0", 400, "mde must not be 0"),
        (f"/api/experiments/{KEY}/plan?power=2", 400, "power must be between 0 and 1"),
        (f"/api/experiments/{KEY}/plan?lookback_days=1e9", 400, "lookback_days"),
        (f"/api/experiments/{KEY}/plan?absolute=%3Cscript%3E", 400, "absolute must be true or false"),
        (f"/api/experiments/{KEY}/plan?until=%27%3B%20DROP", 400, "is not an ISO date"),
        ("/api/experiments/%3Cimg%20src%3Dx%3E/plan", 404, "unknown experiment"),
    ],
)
def test_bad_requests_are_refused(url: str, path: str, status: int, message: str) -> None:
    answer = httpx.get(url + path)
    assert answer.status_code == status
    assert message in answer.json()["error"]
