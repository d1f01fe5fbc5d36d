"""The quality report in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

A run over seeded problems (tests/integration/test_quality_seeded.py's store) renders the summary page
and the GX Data Docs; both open from disk without network, show what failed, and are saved as
screenshots under test-artifacts/quality/ for people to look at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from quality.run import run_quality
from quality.settings import QualitySettings
from tests.fixtures.kafka import free_ports
from tests.integration.test_quality_seeded import REGISTRY, seed
from xpstream.warehouse import Warehouse

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
        quality_report_dir=tmp_path / "reports",
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
        finally:
            browser.close()
    assert all(u.startswith("file://") for u in summary_requests), summary_requests  # self-contained
