"""The funnel section of the results page in headless Chromium: the numbers on screen equal
`xp funnel KEY --format json` (run as a subprocess on the same store before the app opens it), formatted
as its table prints them; a hostile step name is drawn as text; bad API input is a 400 / 404.

No broker: the registry is read from the warehouse's copy (the CLI says so; the dashboards read it there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fixtures.http import serve_in_thread
from tests.fixtures.kafka import free_ports
from tests.integration.test_funnel_cli import KEY, NOW, PLAIN, _seed

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
UNTIL = NOW + timedelta(hours=5)
HOSTILE = "<img src=x onerror=document.title='owned'>"

if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("funnel-e2e") / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "xpstream.cli",
            "funnel",
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


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.locator("#funnel[data-loaded]").wait_for(timeout=60_000)
    assert page.locator("#funnel").get_attribute("data-loaded") == "true", page.inner_text("#funnel-note")


def _pct(x: float | None, spec: str = ".1%") -> str:
    return "—" if x is None else format(x, spec)


def test_funnel_on_the_results_page_equals_xp_funnel_json(page: Any, url: str, seeded: Any) -> None:
    document = seeded[1]
    _open(page, f"{url}/experiments/{KEY}?until={quote(UNTIL.isoformat())}")
    assert "exposure → pageview → purchase" in page.inner_text("#funnel-note")
    shown = 0
    for variation in document["variations"]:
        for step in variation["steps"]:
            row = page.locator(
                f"#funnel-table tr[data-variation='{variation['variation_id']}'][data-step='{step['step']}']"
            )

            def cell(field: str, row: Any = row) -> str:
                return str(row.locator(f"[data-field='{field}']").inner_text())

            assert cell("units") == str(step["units"])
            assert cell("from_previous") == _pct(step["conversion_from_previous"])
            prev = step["conversion_from_previous"]
            assert cell("drop_off") == _pct(None if prev is None else 1 - prev)
            assert cell("overall") == _pct(step["conversion_overall"])
            assert cell("lift") == (_pct(step["lift"], "+.1%") if step["lift"] is not None else "")
            if step["ci_low"] is not None:
                assert cell("interval") == f"[{step['ci_low']:+.1%}, {step['ci_high']:+.1%}]"
            p_value = step["p_value_adjusted"] if step["p_value_adjusted"] is not None else step["p_value"]
            assert cell("p_value") == ("—" if p_value is None else format(p_value, ".3g"))
            shown += 1
    assert shown == 6
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#funnel").screenshot(path=str(ARTIFACTS / "funnel.png"))


def test_a_hostile_step_name_is_text_and_no_funnel_is_said(page: Any, url: str) -> None:
    _open(page, f"{url}/experiments/{KEY}?steps={quote(HOSTILE)},purchase")
    assert page.locator(f'#funnel-table tr[data-step="{HOSTILE}"]').count() == 2
    assert page.locator("#funnel-table img").count() == 0 and page.title() != "owned"
    _open(page, f"{url}/experiments/{PLAIN}")
    assert "declares no funnel" in page.inner_text("#funnel-note")


def test_bad_funnel_requests_are_refused(url: str) -> None:
    for path, status in (
        (f"/api/experiments/{KEY}/funnel?ordered=maybe", 400),
        (f"/api/experiments/{KEY}/funnel?window=-1", 400),
        (f"/api/experiments/{KEY}/funnel?steps=a,a", 400),
        (f"/api/experiments/{KEY}/funnel?until=yesterday", 400),
        ("/api/experiments/nope/funnel", 404),
    ):
        answer = httpx.get(url + path)
        assert answer.status_code == status, (path, answer.text)
        assert "error" in answer.json()


def test_a_funnel_view_is_computed_once_and_reused(url: str) -> None:
    """Viewers of one funnel view share one computation (seconds on a large store): the second answer
    is the first one's result, with its age."""
    path = f"{url}/api/experiments/{KEY}/funnel?steps=pageview&window=3h"
    first, second = httpx.get(path, timeout=60).json(), httpx.get(path, timeout=60).json()
    assert first["funnel"]["computed_at"] == second["funnel"]["computed_at"]
    assert second["shown"]["age_seconds"] >= first["shown"]["age_seconds"]
    other = httpx.get(path.replace("3h", "4h"), timeout=60).json()
    assert (
        other["funnel"]["window_hours"] == 4.0
        and other["funnel"]["computed_at"] != first["funnel"]["computed_at"]
    )


def _rows_equal_the_document(page: Any, document: dict[str, Any]) -> int:
    shown = 0
    for variation in document["variations"]:
        for step in variation["steps"]:
            row = page.locator(
                f"#funnel-table tr[data-variation='{variation['variation_id']}'][data-step='{step['step']}']"
            )
            assert row.locator("[data-field='units']").inner_text() == str(step["units"])
            assert row.locator("[data-field='overall']").inner_text() == _pct(step["conversion_overall"])
            shown += 1
    return shown


def test_the_health_page_shows_the_realtime_funnel_of_the_last_hour_and_day(
    page: Any, url: str, seeded: Any
) -> None:
    """The health page's funnel is `xp funnel` over the units first exposed in the last hour or day: the
    seeded units were first exposed three hours ago, so the last hour has none and the last day has every
    one of them, with the numbers of `xp funnel --format json` (all their events are before now)."""
    page.goto(f"{url}/health?experiment={KEY}")
    page.locator("#funnel[data-loaded='true'][data-window='hour']").wait_for(timeout=60_000)
    for variation in seeded[1]["variations"]:
        units = page.locator(
            f"#funnel-table tr[data-variation='{variation['variation_id']}'] [data-field='units']"
        )
        assert units.all_inner_texts() == ["0"] * len(variation["steps"])
    page.select_option("#funnel-window", "day")
    page.locator("#funnel[data-loaded='true'][data-window='day']").wait_for(timeout=60_000)
    assert _rows_equal_the_document(page, seeded[1]) == 6
    assert "units first exposed since" in page.inner_text("#funnel-note")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#funnel").screenshot(path=str(ARTIFACTS / "health-funnel.png"))


def test_the_realtime_funnel_api_refuses_bad_input_and_answers_from_its_copy(url: str) -> None:
    for path, status in (
        (f"/api/experiments/{KEY}/funnel/realtime?window=week", 400),
        (f"/api/experiments/{KEY}/funnel/realtime?window={quote(HOSTILE)}", 400),
        ("/api/experiments/nope/funnel/realtime", 404),
    ):
        answer = httpx.get(url + path)
        assert answer.status_code == status, (path, answer.text)
        assert "error" in answer.json() and HOSTILE not in answer.text
    path = f"{url}/api/experiments/{PLAIN}/funnel/realtime?window=day"
    assert httpx.get(path).json()["funnel"] is None  # declares none: said, not computed
    path = f"{url}/api/experiments/{KEY}/funnel/realtime?window=day"
    answers = [httpx.get(path, timeout=60)]
    while answers[-1].status_code == 202:
        assert answers[-1].headers["Retry-After"] == "1" and answers[-1].json()["pending"] is True
        answers.append(httpx.get(path, timeout=60))
    first, second = answers[-1].json(), httpx.get(path, timeout=60).json()
    assert first["funnel"]["computed_at"] == second["funnel"]["computed_at"]  # one copy, reused
    assert second["funnel"]["variations"][0]["steps"][0]["units"] > 0
