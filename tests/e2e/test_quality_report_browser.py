"""The quality report in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

A run over seeded problems (tests/integration/test_quality_seeded.py's store) renders the summary page
and the GX Data Docs; both open from disk without network, show what failed, and are saved as
screenshots under test-artifacts/quality/ for people to look at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from quality.run import run_quality
from quality.settings import QualitySettings
from tests.fixtures.kafka import free_ports
from tests.integration.test_quality_seeded import REGISTRY, seed
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "quality"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


def test_summary_and_data_docs_render(warehouse: Warehouse, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    seed(warehouse, datetime.now(UTC))
    (closed_port,) = free_ports(1)
    settings = QualitySettings(
        home=tmp_path / "xp-home",
        kafka_bootstrap=f"127.0.0.1:{closed_port}",
        quality_kafka_timeout=1.0,
        quality_report_dir=tmp_path / "xp-home" / "reports" / "quality",  # where the dashboard serves it
    )
    run = run_quality(settings, warehouse=warehouse, registry=REGISTRY)
    assert run.report_path is not None and run.docs_path is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page: Any = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(run.report_path.as_uri())
            assert "Data quality" in page.title()
            verdict = page.locator(".verdict")
            assert verdict.inner_text() == f"{len(run.failures)} checks failed"
            attention = page.locator("table").first
            assert attention.locator("tr.failed").count() == len(run.failures)
            assert page.get_by_text("SAMPLE RATIO MISMATCH").first.is_visible()
            assert page.locator("h2", has_text="Experiments").is_visible()
            page.screenshot(path=str(ARTIFACTS / "summary.png"), full_page=True)
            page.screenshot(path=str(ARTIFACTS / "summary-top.png"))
            summary_requests = list(requests)

            exposures = page.locator("tr", has_text="xp.exposures").get_by_role("link", name="GX validation")
            exposures.first.click()
            page.wait_for_load_state("domcontentloaded")
            assert "/data-docs/validations/xp/exposures/" in page.url
            assert page.get_by_text("Unsuccessful Expectations").first.is_visible()
            assert page.get_by_text("xp.exposures").first.is_visible()
            page.screenshot(path=str(ARTIFACTS / "data-docs-exposures.png"), full_page=True)
            served_csp = served_report(browser, warehouse, settings.home)
        finally:
            browser.close()
    assert all(u.startswith("file://") for u in summary_requests), summary_requests  # self-contained
    # only GX's CDN assets (bootstrap, jquery… from unpkg and the like) are blocked: the report works
    # without them (as from disk, offline); nothing inline and nothing of the report's own is refused
    assert all(re.search(r"'https://[^']+'", v) for v in served_csp), served_csp


def served_report(browser: Any, warehouse: Warehouse, home: Path) -> list[str]:
    """The same report through the dashboard (/quality/report/, under its sandboxed CSP, decision 0039):
    it renders, styled, and its GX links work; returns the CSP violations the console reported."""
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from tests.fixtures.http import serve_in_thread

    violations: list[str] = []
    app = create_app(DashboardSettings(home=home, clickhouse_url=None), warehouse, lag_monitor=False)
    with serve_in_thread(app) as url:
        page: Any = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: violations.append(m.text) if "Security Policy" in m.text else None)
        response = page.goto(f"{url}/quality/report/")
        assert response.status == 200 and "sandbox" in response.headers["content-security-policy"]
        assert "Data quality" in page.title()
        verdict = page.locator(".verdict")
        assert verdict.is_visible()
        # the inline <style> applies: the verdict is not in the browser's default font weight/colour
        assert page.evaluate("getComputedStyle(document.querySelector('.verdict')).color") != "rgb(0, 0, 0)"
        page.locator("tr", has_text="xp.exposures").get_by_role("link", name="GX validation").first.click()
        page.wait_for_load_state("domcontentloaded")
        assert "/quality/report/data-docs/validations/xp/exposures/" in page.url
        assert page.get_by_text("Unsuccessful Expectations").first.is_visible()
        page.screenshot(path=str(ARTIFACTS / "data-docs-served.png"), full_page=True)
        page.close()
    return violations
