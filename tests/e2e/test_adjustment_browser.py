"""The regression adjustment (CUPED++) on the results page in headless Chromium: each metric's card says
whether the adjustment applied and its variance reduction, equal to `xp results KEY --format json` (run as
a subprocess on the same store before the app opens it); decision 0093.

No broker: the registry is read from the warehouse's copy (as `xp results` and the dashboards do).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.dashboard_browser import CHROMIUM, chromium_page, dashboard_on, xp_json_offline

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
KEY = "adjusted-exp"
NOW = datetime.now(UTC) - timedelta(hours=3)
UNTIL = NOW + timedelta(hours=5)
DOCUMENT = {
    "metrics": [
        {"name": "sessions", "event": "session", "aggregation": "count"},
        {"name": "aov", "numerator": "revenue", "denominator": "pageviews"},
    ],
    "experiments": [
        {
            "key": KEY,
            "status": "running",
            "variations": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
            "metrics": {"primary": ["pageviews"], "secondary": ["aov"]},
            "analysis": {
                "method": "frequentist",
                "adjustment": {"covariates": ["own", "sessions"], "strata": ["device"]},
            },
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
    from schemas.records import ExposureSource, MetricEvent
    from xpcore.config import WarehouseSettings
    from xpcore.warehouse import open_warehouse

    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=NOW
    )
    rng = random.Random(93)
    exposures, events, attributions = [], [], []
    for i in range(1200):
        unit, variation, device = f"u{i}", i % 2, ("ios", "android", "web")[i % 3]
        exposures.append(
            Exposure(
                exposure_id=f"x{i}",
                unit_id=unit,
                hash_attribute="id",
                experiment_key=KEY,
                variation_id=variation,
                variation_key="ab"[variation],
                source=ExposureSource.LOADGEN,
                attributes={"device": device},
                exposed_at=NOW,
            )
        )
        activity = rng.lognormvariate(0.5, 0.6)
        for j in range(round(2 * activity + rng.random())):  # before exposure: the covariates
            at = NOW - timedelta(days=1 + j % 5)
            events.append(
                MetricEvent(event_id=f"p{i}-{j}", unit_id=unit, event_name="pageview", occurred_at=at)
            )
            events.append(
                MetricEvent(event_id=f"s{i}-{j}", unit_id=unit, event_name="session", occurred_at=at)
            )
        for j in range(round(activity * (1.2 if variation else 1.0) + rng.random())):
            at = NOW + timedelta(minutes=j)
            attributions.append(Attribution(f"q{i}-{j}", unit, KEY, variation, "pageview", None, at, NOW))
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.events", to_arrow(events, MetricEvent))
        store.insert_arrow("xp.attributed_events", attributions_table(attributions))
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("adjustment-e2e") / "xp-home"
    _seed(home)
    return home, xp_json_offline(home, "results", KEY, "--until", UNTIL.isoformat(), "--format", "json")


@pytest.fixture(scope="module")
def url(seeded: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    with dashboard_on(seeded[0]) as served:
        yield served


@pytest.fixture
def page(url: str) -> Iterator[Any]:
    with chromium_page(sync_api) as page:
        yield page


def test_the_adjustment_on_the_results_page_equals_xp_results_json(
    page: Any, url: str, seeded: tuple[Path, dict[str, Any]]
) -> None:
    document = seeded[1]
    assert document["analysis"]["adjustment"] == {"covariates": ["own", "sessions"], "strata": ["device"]}
    page.goto(f"{url}/experiments/{KEY}?until={quote(UNTIL.isoformat())}")
    page.locator("body[data-loaded='true'], #error:not([hidden])").first.wait_for(timeout=60_000)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    by_name = {m["metric"]: m for m in document["metrics"]}
    pageviews, aov = by_name["pageviews"]["adjustment"], by_name["aov"]["adjustment"]
    assert pageviews["applied"] is True and pageviews["variance_reduction"] > 0.1
    assert aov["applied"] is False
    note = page.locator('div.card[data-metric="pageviews"] [data-field="adjustment"]')
    assert note.get_attribute("data-applied") == "true"
    reduction = format(pageviews["variance_reduction"] * 100, ".1f")
    assert note.inner_text() == (
        f"Regression adjustment (own, sessions, stratum device) applied: variance {reduction}% lower"
    )
    skipped = page.locator('div.card[data-metric="aov"] [data-field="adjustment"]')
    assert skipped.get_attribute("data-applied") == "false"
    assert aov["reason"] in skipped.inner_text()
    row = page.locator('div.card[data-metric="pageviews"] tr[data-variation="1"]')
    lift = by_name["pageviews"]["variants"][1]["estimate"]
    assert row.locator('[data-field="lift"]').inner_text().strip() == format(lift, "+.1%")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator('div.card[data-metric="pageviews"]').screenshot(path=str(ARTIFACTS / "adjustment.png"))
