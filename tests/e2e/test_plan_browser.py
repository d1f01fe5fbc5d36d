"""The planning section of the experiment's page in headless Chromium: the numbers on screen equal
`xp plan KEY --format json` (run as a subprocess on the same store before the app opens it: the CLI end to
end), a new MDE recomputes them, and bad API input is a 400 / 404.

No broker: the registry is read from the warehouse's copy (the CLI says so; the dashboards read it there).
"""

from __future__ import annotations

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
from tests.fixtures.dashboard_browser import (
    CHROMIUM,
    chromium_page,
    dashboard_on,
    xp_json_offline,
)
from xpcore.config import WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
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
    return home, xp_json_offline(home, "plan", KEY, "--until", UNTIL.isoformat(), "--format", "json")


@pytest.fixture(scope="module")
def url(seeded: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    with dashboard_on(seeded[0]) as served:
        yield served


@pytest.fixture
def page(url: str) -> Iterator[Any]:
    with chromium_page(sync_api, height=2200) as page:
        yield page


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
