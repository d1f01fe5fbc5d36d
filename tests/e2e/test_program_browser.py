"""The Program page in headless Chromium: the numbers on screen equal `xp program --format json` (a
subprocess on the same store, before the app opens it); hostile ``team``/``metric``/``experiments``
parameters are a 400 or an inert filter, never markup or a 500; the API needs a read token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr

from tests.e2e.test_funnel_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from tests.fixtures.http import serve_in_thread
from tests.integration.test_program import run_program, seed_home

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


def _lift(value: float | None) -> str:
    """XP.signedPct(x, 2)."""
    return "—" if value is None else f"{value * 100:+.2f}%"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    home = tmp_path_factory.mktemp("program-e2e") / "xp-home"
    seed_home(home)
    documents = []
    for args in ((), ("--team", "growth", "--metric", "revenue")):
        run = run_program(home, *args, "--format", "json")
        assert run.returncode == 0, run.stderr
        documents.append(json.loads(run.stdout))
    return home, documents[0], documents[1]


@pytest.fixture(scope="module")
def url(seeded: tuple[Path, dict[str, Any], dict[str, Any]]) -> Iterator[str]:
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


def _check_page(page: Any, document: dict[str, Any]) -> None:
    page.locator("#program[data-loaded]").wait_for(timeout=60_000)
    assert page.locator("#program").get_attribute("data-loaded") == "true"
    rows = page.locator("#program-experiments-table tr[data-experiment]")
    assert rows.count() == len(document["experiments"]) > 0
    for e in document["experiments"]:
        row = page.locator(f"#program-experiments-table tr[data-experiment='{e['experiment']}']")
        assert row.locator("[data-field='team']").inner_text() == e["team"]
        assert row.locator("[data-field='decision']").inner_text() == e["decision"]
        assert row.locator("[data-field='metric']").inner_text() == e["metric"]
        assert row.locator("[data-field='lift']").inner_text() == _lift(e["lift"])
        assert (
            row.locator("[data-field='interval']").inner_text()
            == f"{_lift(e['ci_low'])} … {_lift(e['ci_high'])}"
        )
        assert row.locator("[data-field='duration_days']").inner_text() == f"{e['duration_days']:.1f}"
        assert row.locator("[data-field='units']").inner_text() == f"{e['units']:,}"
    for field, box in (("team", "#program-teams"), ("metric", "#program-metrics")):
        for g in document[f"{field}s"]:
            row = page.locator(f"{box} tr[data-{field}='{g[field]}']")
            for outcome in ("ship", "rollback", "inconclusive", "undecided", "experiments"):
                assert row.locator(f"[data-field='{outcome}']").inner_text() == str(g[outcome])
            rate = g["win_rate"]
            assert row.locator("[data-field='win_rate']").inner_text() == (
                "—" if rate is None else f"{rate * 100:.0f}%"
            )
            assert row.locator("[data-field='median_lift']").inner_text() == _lift(g["lift"]["median"])
    meta = document["meta_analysis"]
    result = page.locator("#program-meta-result")
    assert result.get_attribute("data-metric") == meta["metric"]
    for model, key in (("fixed", "fixed_effect"), ("random", "random_effects")):
        row = result.locator(f"tr[data-model='{model}']")
        assert row.locator("[data-field='estimate']").inner_text() == _lift(meta[key]["estimate"])
        assert row.locator("[data-field='interval']").inner_text() == (
            f"{_lift(meta[key]['ci_low'])} … {_lift(meta[key]['ci_high'])}"
        )
    assert result.locator("[data-field='q']").inner_text() == f"Q = {meta['q']:.3f}"
    assert result.locator("[data-field='i_squared']").inner_text() == f"I² = {meta['i_squared'] * 100:.1f}%"


def test_program_page_shows_xp_program_numbers(
    url: str, seeded: tuple[Path, dict[str, Any], dict[str, Any]]
) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/program")
            _check_page(page, seeded[1])
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "program.png"), full_page=True)
            page.goto(f"{url}/program?team=growth&metric=revenue")
            _check_page(page, seeded[2])
            assert page.locator("#program-team").input_value() == "growth"
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            hostile = "<img src=x onerror=alert(1)>"
            page.goto(f"{url}/program?metric={quote(hostile)}")
            page.locator("#program[data-loaded]").wait_for(timeout=60_000)
            assert page.locator("#program-metric").input_value() == hostile
            assert page.locator("#program-experiments-table img").count() == 0
            assert hostile in page.locator("#program-filter-note").inner_text() and dialogs == []
            assert errors == [], errors
        finally:
            browser.close()


def test_hostile_program_parameters(url: str) -> None:
    for query, words in (
        ("experiments=g-ship,nope", "not a finished experiment: nope"),
        ("experiments=%2C%2C", "experiments must name at least one experiment"),
        ("experiments=" + ",".join(f"e{i}" for i in range(501)), "at most 500 experiments"),
        ("experiments=" + quote("g-ship' OR 1=1 --"), "not a finished experiment"),
        ("team=" + quote("x\x00y"), "team must be a printable name"),
        ("metric=" + "m" * 201, "metric must be a printable name"),
    ):
        answer = httpx.get(f"{url}/api/program?{query}")
        assert answer.status_code == 400 and words in answer.json()["error"], (query, answer.text)
    injected = httpx.get(f"{url}/api/program?metric=" + quote("conversion' OR 1=1 --"))
    assert injected.status_code == 200
    assert {e["error"] for e in injected.json()["experiments"]} == {"metric_not_analysed"}
    assert injected.json()["meta_analysis"]["experiments"] == 0


def test_program_api_needs_a_read_token(seeded: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    from starlette.testclient import TestClient

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    settings = DashboardSettings(
        home=seeded[0],
        clickhouse_url=None,
        store_wait_seconds=0,
        dashboard_read_tokens=SecretStr("reader"),
        dashboard_admin_tokens=SecretStr("boss"),
    )
    warehouse = open_warehouse(settings)
    try:
        app = create_app(settings, warehouse, lag_monitor=False)
        with TestClient(app, base_url="http://127.0.0.1:8200") as client:
            assert client.get("/api/program").status_code == 401
            read = client.get("/api/program", headers={"Authorization": "Bearer reader"})
            assert read.status_code == 200 and read.json() == seeded[1]
    finally:
        warehouse.close()
