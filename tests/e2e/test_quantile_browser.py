"""Quantile metrics on the results page in headless Chromium: the numbers on screen equal
`xp results KEY --format json` (run as a subprocess on the same store before the app opens it), and the
card says which quantile over what ("p90 per event"); decision 0083.

No broker: the registry is read from the warehouse's copy (as `xp results` and the dashboards do).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.http import serve_in_thread
from tests.fixtures.kafka import free_ports

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
KEY = "latency-exp"
NOW = datetime.now(UTC) - timedelta(hours=3)
UNTIL = NOW + timedelta(hours=5)
DOCUMENT = {
    "metrics": [
        {"name": "latency_p90", "type": "quantile", "event": "request", "quantile": 0.9, "per": "event"},
        {"name": "session_p50", "type": "quantile", "event": "request", "quantile": 0.5},
    ],
    "experiments": [
        {
            "key": KEY,
            "status": "running",
            "variations": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
            "metrics": {"primary": ["latency_p90"], "secondary": ["session_p50", "conversion"]},
            "analysis": {"method": "frequentist"},
        }
    ],
}

if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


def _seed(home: Path) -> None:
    from assignment.authoring import parse_registry_document
    from assignment.registry import RegistrySnapshot
    from assignment.registry_changes import plan_changes
    from pipelines.attribution import Attribution
    from pipelines.processor import attributions_table
    from schemas import Exposure, RegistryRecord
    from schemas.arrow import to_arrow
    from tests.factories import make_exposure
    from xpcore.config import WarehouseSettings
    from xpcore.warehouse import open_warehouse

    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=NOW
    )
    rng = random.Random(83)
    exposures = [make_exposure(f"u{i}", i % 2, NOW, 0, i % 17 == 0, KEY) for i in range(1200)]
    attributions = []
    for i in range(1200):
        slow = rng.gauss(0.0, 0.5)
        for j in range(rng.randrange(1, 5)):
            value = round(100 * (1.25 if i % 2 else 1.0) * 2.718 ** (slow + rng.gauss(0.0, 0.4)), 2)
            attributions.append(
                Attribution(
                    f"r{i}-{j}", f"u{i}", KEY, i % 2, "request", value, NOW + timedelta(minutes=j), NOW
                )
            )
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.attributed_events", attributions_table(attributions))
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("quantile-e2e") / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "xpstream.cli",
            "results",
            KEY,
            "--until",
            UNTIL.isoformat(),
            "--format",
            "json",
        ],
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
    from xpcore.warehouse import open_warehouse

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
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        try:
            yield page
        finally:
            browser.close()
        assert errors == [], errors


def _pct(x: float | None) -> str:
    return "—" if x is None else format(x, "+.1%")


def _g(x: float | None, digits: int) -> str:
    return "—" if x is None else format(x, f".{digits}g")


def test_quantile_metrics_on_the_results_page_equal_xp_results_json(
    page: Any, url: str, seeded: tuple[Path, dict[str, Any]]
) -> None:
    document = seeded[1]
    page.goto(f"{url}/experiments/{KEY}?until={quote(UNTIL.isoformat())}")
    page.locator("body[data-loaded='true'], #error:not([hidden])").first.wait_for(timeout=60_000)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    quantiles = [m for m in document["metrics"] if m["type"] == "quantile"]
    assert [(m["metric"], m["quantile"], m["per"]) for m in quantiles] == [
        ("latency_p90", 0.9, "event"),
        ("session_p50", 0.5, "unit"),
    ]
    checked = 0
    for metric in quantiles:
        card = page.locator(f'div.card[data-metric="{metric["metric"]}"]')
        label = f"p{round(metric['quantile'] * 100)} per {metric['per']}"
        assert card.locator('[data-field="kind"]').inner_text().startswith(label)
        for index, variant in enumerate(metric["variants"]):
            row = card.locator(f'tr[data-variation="{variant["variation_id"]}"]')

            def cell(field: str, row: Any = row) -> str:
                return str(row.locator(f'[data-field="{field}"]').inner_text()).strip()

            assert cell("units") == f"{variant['units']:,}"
            assert cell("mean") == _g(variant["mean"], 4)
            if index == 0:
                continue
            assert variant["error"] is None and variant["significant"] is True
            assert cell("lift") == _pct(variant["estimate"])
            assert cell("interval-text") == f"[{_pct(variant['ci_low'])}, {_pct(variant['ci_high'])}]"
            assert cell("p_value") == _g(variant["p_value"], 3)
            checked += 1
    assert checked == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator('div.card[data-metric="latency_p90"]').screenshot(path=str(ARTIFACTS / "quantile.png"))
