"""The Activity page's roll-ups in headless Chromium: the numbers on screen equal `xp activity --format
json` (a subprocess on the same store, before the app opens it); bad API input is a 400; teams, never
people, are named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.test_funnel_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from tests.fixtures.http import serve_in_thread
from tests.integration.test_activity import SINCE, UNTIL, run_activity, seed_home

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")
WINDOW = f"since={quote(SINCE.isoformat())}&until={quote(UNTIL.isoformat())}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("activity-e2e") / "xp-home"
    seed_home(home)
    run = run_activity(home, "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--format", "json")
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


def test_activity_page_shows_xp_activity_numbers(url: str, seeded: tuple[Path, dict[str, Any]]) -> None:
    document = seeded[1]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/audit?{WINDOW}")
            page.locator("#activity-summary[data-loaded]").wait_for(timeout=60_000)
            assert page.locator("#activity-summary").get_attribute("data-loaded") == "true"
            for team in document["teams"]:
                row = page.locator(f"#activity-teams tr[data-team='{team['team']}']")
                for field in ("changes", "experiments_started", "experiments_stopped", "overrides_created"):
                    assert row.locator(f"[data-field='{field}']").inner_text() == str(team[field])
                assert row.locator("[data-field='overrides_expired']").inner_text() == str(
                    team["overrides_expired"]
                )
                median = team["median_days_to_decision"]
                shown = row.locator("[data-field='median_days_to_decision']").inner_text()
                assert shown == ("—" if median is None else f"{median:.1f}")
            assert page.locator("#activity-teams tr[data-team]").count() == len(document["teams"]) == 3
            for usage in document["usage"]:
                row = page.locator(
                    f"#activity-usage tr[data-day='{usage['day']}'][data-source='{usage['source']}']"
                )
                assert row.locator("[data-field='exposures']").inner_text() == str(usage["exposures"])
                assert row.locator("[data-field='experiments']").inner_text() == str(usage["experiments"])
            assert len(document["usage_by_key"]) == 2
            for usage in document["usage_by_key"]:
                row = page.locator(
                    f"#activity-usage-by-key tr[data-day='{usage['day']}'][data-kind='{usage['kind']}']"
                    f"[data-subject='{usage['subject']}']"
                )
                assert row.locator("[data-field='count']").inner_text() == str(usage["count"])
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.locator("#activity-summary").screenshot(path=str(ARTIFACTS / "activity.png"))
            assert errors == [], errors
        finally:
            browser.close()


def test_bad_activity_requests_are_refused(url: str) -> None:
    for path in (
        "/api/activity?since=yesterday",
        f"/api/activity?since={quote(UNTIL.isoformat())}&until=2026-01-01",
    ):
        answer = httpx.get(url + path)
        assert answer.status_code == 400 and "error" in answer.json(), answer.text
    answer = httpx.get(f"{url}/api/activity?{WINDOW}")
    assert answer.status_code == 200 and "changed_by" not in answer.text
