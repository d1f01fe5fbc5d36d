"""The realtime health page fed by real traffic: `xp loadgen` → Kafka → the stream worker → chDB → the page.

Nothing is seeded into the warehouse: the example registry is published to Kafka, the stream worker runs
(in a thread of this process, as `xp up` runs it, so that it shares the embedded store with the dashboard),
and `xp loadgen` (a subprocess) produces two rounds of traffic. Headless Chromium keeps the health page
open and sees its numbers rise on its own auto-refresh after each round: units so far equal the units
loadgen exposed to the experiment, and the API's ingest counter and dead letters equal loadgen's counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_dashboard_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from tests.fixtures.http import serve_in_thread
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.waiting import wait_until
from xpcore.config import KafkaSettings

pytestmark = pytest.mark.e2e

KEY = "checkout-button"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


@dataclass
class Live:
    url: str
    home: Path
    kafka: KafkaSettings


@pytest.fixture(scope="module")
def live(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """An empty store, the registry on Kafka, the stream worker and the dashboard running."""
    from assignment.authoring import load_registry_file
    from assignment.registry import RegistrySnapshot
    from assignment.registry_changes import plan_changes
    from assignment.registry_topic import publish_changes
    from dashboards.app import create_app
    from dashboards.sample_data import EXAMPLES
    from dashboards.settings import DashboardSettings
    from pipelines.worker import run_worker
    from xpcore.config import StreamSettings
    from xpcore.kafka.topics import ensure_topics
    from xpcore.warehouse import open_warehouse

    home = tmp_path_factory.mktemp("dash-live") / "xp-home"
    kafka = kafka_broker.settings(topic_prefix=f"live-{uuid.uuid4().hex[:8]}-")
    ensure_topics(kafka)
    records = plan_changes(
        RegistrySnapshot(), load_registry_file(EXAMPLES), actor="alice@example.com", now=datetime.now(UTC)
    )
    publish_changes(kafka, records)
    common = {
        "home": home,
        "clickhouse_url": None,
        "store_wait_seconds": 0,
        "kafka_bootstrap": kafka.kafka_bootstrap,
        "topic_prefix": kafka.topic_prefix,
    }
    stop = threading.Event()
    stream = StreamSettings(**common, stream_batch_wait_seconds=0.2)  # type: ignore[arg-type]
    report: dict[str, Any] = {}

    def work() -> None:
        try:
            report["done"] = run_worker(stream, stop_event=stop)
        except BaseException as error:  # surfaced by the test through `report`
            report["error"] = error

    worker = threading.Thread(target=work, name="stream-worker", daemon=True)
    worker.start()
    settings = DashboardSettings(
        **common,  # type: ignore[arg-type]
        dashboard_refresh_seconds=1.0,
        dashboard_units_max_age_seconds=1.0,
        dashboard_stream_group_id=stream.stream_group_id,
    )
    warehouse = open_warehouse(settings)
    app = create_app(settings, warehouse)
    try:
        with serve_in_thread(app) as url:
            yield Live(url, home, kafka)
    finally:
        stop.set()
        worker.join(timeout=60)
        warehouse.close()
    assert "error" not in report, report.get("error")


def loadgen(live: Live, users: int, seed: int) -> dict[str, Any]:
    """`xp loadgen … --format json` against the live broker (experiments from the registry topic)."""
    env = {
        **os.environ,
        "XP_HOME": str(live.home),
        "XP_KAFKA_BOOTSTRAP": live.kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": live.kafka.topic_prefix,
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    command = ["loadgen", "--users", str(users), "--seed", str(seed), "--invalid-fraction", "0.02"]
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *command, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def api_health(page: Any, live: Live) -> dict[str, Any]:
    document: dict[str, Any] = page.request.get(f"{live.url}/api/health?experiment={KEY}").json()
    return document


def wait_for_api(page: Any, live: Live, expected: dict[str, int], timeout: float = 60) -> dict[str, Any]:
    """The health API once the worker has loaded everything loadgen sent (it loads in batches)."""
    seen: dict[str, int] = {}

    def loaded() -> dict[str, Any] | None:
        health = api_health(page, live)
        seen.update(
            events=sum(health["ingest_per_minute"]["events"]),
            exposures=sum(health["ingest_per_minute"]["exposures"]),
            dead_letters=sum(health["dead_letters_by_reason"].values()),
        )
        return health if seen == expected else None

    health: dict[str, Any] = wait_until(
        loaded,
        timeout=timeout,
        interval=0.5,
        message=lambda: f"the health API to show {expected}, saw {seen}",
    )
    return health


def test_health_page_rises_with_loadgen_traffic_through_the_stream_worker(live: Live) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # the registry reaches xp.registry through the worker: wait until the page knows the experiment
            experiments = f"{live.url}/api/experiments"
            wait_until(
                lambda: KEY in {e["key"] for e in page.request.get(experiments).json()["experiments"]},
                timeout=60,
                interval=0.5,
                message="the stream worker to store the registry",
            )
            page.goto(f"{live.url}/health?experiment={KEY}")
            # locators, not wait_for_function: the page's CSP forbids eval, which string predicates need
            sync_api.expect(page.locator("#units")).not_to_have_text("—", timeout=30_000)
            assert page.inner_text("#units") == "0"

            expected = {"events": 0, "exposures": 0, "dead_letters": 0}
            units = 0
            for round_, (users, seed) in enumerate([(300, 11), (200, 12)]):
                sent = loadgen(live, users, seed)
                units += sum(sent["per_experiment"][KEY].values())
                expected["events"] += sent["events"]
                expected["exposures"] += sent["exposures"]
                expected["dead_letters"] += sent["invalid"]
                # the page's own auto-refresh (every second) shows the new units: no reload here
                sync_api.expect(page.locator("#units")).to_have_text(f"{units:,}", timeout=60_000)
                health = wait_for_api(page, live, expected)
                assert health["units"] == units and health["dead_letter_rate"] > 0
                assert page.inner_text("#dead-rate") not in ("—", "0.00%"), round_
            assert page.inner_text("#lag") != ""  # a number from Kafka, or "unknown": never an error
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "health-live.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
