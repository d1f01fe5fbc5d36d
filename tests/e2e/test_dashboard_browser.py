"""The dashboards in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Seeded with dashboards.sample_data (direct inserts: the pipeline is not the point here; the registry goes
through Kafka so that the real `xp results --format json` runs as a subprocess against the same store):

- the results page shows exactly the numbers `xp results KEY --format json` prints, formatted the same:
  computed for a window (`?until=`), and, without one, from the snapshot `xp jobs run stats` stored, which
  the page names (source and computed_at);
- a window is computed in the background: the page says "Computing results for this view… (started N s
  ago)" while it runs, then draws the same numbers; a failed computation shows its error;
- the health page picks up new traffic on its own (auto-refresh);
- every export link on the results page downloads a file that parses back to the same rows;
- screenshots of every page go to test-artifacts/dashboards/ (docs/img/dashboards/ holds reviewed copies).
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.http import serve_in_thread
from tests.fixtures.kafka import KafkaBroker
from xpcore.config import KafkaSettings

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboards"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "checkout-button"

if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) is not installed")


@dataclass
class Served:
    url: str
    home: Path
    kafka: KafkaSettings
    until: datetime
    app: Any
    warehouse: Any
    units: int


def run_xp(served: Served, *args: str) -> str:
    env = {
        **os.environ,
        "XP_HOME": str(served.home),
        "XP_KAFKA_BOOTSTRAP": served.kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": served.kafka.topic_prefix,
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def cli_results(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Seed a store, publish its registry to Kafka, run `xp results` (store closed), hand over the paths."""
    from assignment.registry_topic import publish_changes
    from dashboards.sample_data import seed_sample_data
    from dashboards.settings import DashboardSettings
    from xpcore.kafka.topics import ensure_topics
    from xpcore.warehouse import open_warehouse

    home = tmp_path_factory.mktemp("dash-e2e") / "xp-home"
    kafka = kafka_broker.settings(topic_prefix=f"dash-{uuid.uuid4().hex[:8]}-")
    ensure_topics(kafka)
    settings = DashboardSettings(home=home, clickhouse_url=None, store_wait_seconds=0)
    warehouse = open_warehouse(settings)
    try:  # events run up to 2 min after their exposure: all in the past, so `xp results` = the snapshot
        data = seed_sample_data(
            warehouse, units=1500, minutes=30, now=datetime.now(UTC) - timedelta(minutes=5)
        )
    finally:
        warehouse.close()
    publish_changes(kafka, data.records)
    until = data.now + timedelta(minutes=1)
    served = Served("", home, kafka, until, None, None, data.units[KEY])
    run_xp(served, "jobs", "run", "stats")  # the snapshot the results page shows without a window
    yield served


@pytest.fixture(scope="module")
def served(cli_results: Served, cli_documents: dict[str, dict[str, Any]]) -> Iterator[Served]:
    """The app on a free loopback port (uvicorn in a thread), over the seeded store, Kafka lag included.
    Opened after `xp results` ran (cli_documents): chDB allows one process per store."""
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from xpcore.warehouse import open_warehouse

    settings = DashboardSettings(
        home=cli_results.home,
        clickhouse_url=None,
        store_wait_seconds=0,
        kafka_bootstrap=cli_results.kafka.kafka_bootstrap,
        topic_prefix=cli_results.kafka.topic_prefix,
        dashboard_refresh_seconds=1.0,
        dashboard_results_max_age_seconds=3600,  # the stats job's snapshot stays the one shown
        dashboard_units_max_age_seconds=1.0,
    )
    warehouse = open_warehouse(settings)
    app = create_app(settings, warehouse)
    try:
        with serve_in_thread(app) as url:
            yield Served(
                url, cli_results.home, cli_results.kafka, cli_results.until, app, warehouse, cli_results.units
            )
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def cli_documents(cli_results: Served) -> dict[str, dict[str, Any]]:
    """`xp results` JSON for two methods over a window, and as plain `xp results KEY --format json`
    ("plain"), computed before the app opens the store."""
    documents = {
        method: json.loads(
            run_xp(
                cli_results,
                "results",
                KEY,
                "--format",
                "json",
                "--method",
                method,
                "--until",
                cli_results.until.isoformat(),
            )
        )
        for method in ("sequential", "bayesian")
    }
    documents["plain"] = json.loads(run_xp(cli_results, "results", KEY, "--format", "json"))
    return documents


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # the pages run under a strict CSP (decision 0039): a blocked script, style or fetch is a failure
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert errors == [], errors


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_page(page: Any, served: Served, path: str) -> None:
    page.goto(served.url + path)
    # locators, not wait_for_function: the page's CSP forbids eval, which string predicates need
    page.locator("body[data-loaded='true'], #error:not([hidden])").first.wait_for(timeout=60_000)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")


# Python's formats, as `xp results` (table) and the page use them
def fmt_pct(x: float | None, sign: bool = True) -> str:
    return "—" if x is None else format(x, "+.1%" if sign else ".1%")


def fmt_g(x: float | None, digits: int) -> str:
    return "—" if x is None else format(x, f".{digits}g")


@pytest.mark.parametrize("method", ["sequential", "bayesian"])
def test_results_page_shows_the_cli_numbers(
    page: Any, served: Served, cli_documents: dict[str, dict[str, Any]], method: str
) -> None:
    document = cli_documents[method]
    until = quote(served.until.isoformat())
    open_page(page, served, f"/experiments/{KEY}?method={method}&until={until}")
    assert page.locator("#results-source").get_attribute("data-source") == "computed"
    assert_page_shows(page, document, method)
    if method == "sequential":
        screenshot(page, "results")


def test_results_page_shows_the_stored_snapshot_and_says_so(
    page: Any, served: Served, cli_documents: dict[str, dict[str, Any]]
) -> None:
    """Without a window the page shows at once what `xp jobs run stats` stored, names that snapshot, and
    its numbers are those of `xp results KEY --format json` (no new data since the snapshot)."""
    document = cli_documents["plain"]
    with served.app.state.dashboard.runner.locked():
        stored = served.warehouse.query_arrow(
            "SELECT max(computed_at) AS at FROM xp.results"
            " WHERE experiment_key = {k:String} AND method = {m:String}",
            {"k": KEY, "m": document["method"]},
        ).to_pylist()[0]["at"]
    open_page(page, served, f"/experiments/{KEY}")
    source = page.locator("#results-source")
    assert source.get_attribute("data-source") == "snapshot"
    assert source.get_attribute("data-computed-at") == stored.isoformat()
    assert "stored snapshot (xp jobs run stats)" in source.inner_text()
    assert page.inner_text("#computed-at") == stored.strftime("%Y-%m-%d %H:%M:%S")
    assert stored > datetime.fromisoformat(document["computed_at"]) - timedelta(
        minutes=5
    )  # the stats job's run
    assert_page_shows(page, document, document["method"])
    screenshot(page, "results-snapshot")


def test_a_window_shows_the_computing_state_then_the_cli_numbers(
    page: Any, served: Served, cli_documents: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The computation is held, so the page is seen in its computing state, then released: the page
    polls and ends with `xp results --until … --format json`'s numbers."""
    context = served.app.state.dashboard
    context.views.clear()  # the parametrized test above computed this view already
    compute, release = context._compute, threading.Event()

    def held(spec: Any, plan: Any, **options: Any) -> Any:
        assert release.wait(120)
        return compute(spec, plan, **options)

    monkeypatch.setattr(context, "_compute", held)
    until = quote(served.until.isoformat())
    page.goto(f"{served.url}/experiments/{KEY}?method=sequential&until={until}")
    page.locator("body[data-computing='true']").wait_for(state="attached", timeout=30_000)
    banner = page.locator("#computing")
    assert banner.is_visible() and banner.get_attribute("data-state") in ("queued", "computing")
    text = banner.inner_text()
    assert "results for this view (until " in text and "s ago)" in text, text
    assert page.locator("div.card[data-metric]").count() == 0  # nothing drawn yet
    screenshot(page, "results-computing")
    release.set()
    page.locator("body[data-loaded='true']").wait_for(state="attached", timeout=120_000)
    assert page.locator("#error").is_hidden() and banner.is_hidden()
    assert page.locator("#results-source").get_attribute("data-source") == "computed"
    assert_page_shows(page, cli_documents["sequential"], "sequential")


def test_a_failed_window_shows_its_error(page: Any, served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from xpcore.errors import TransientError

    context = served.app.state.dashboard

    def broken(spec: Any, plan: Any, **options: Any) -> Any:
        raise TransientError("warehouse unreachable: connection refused")

    monkeypatch.setattr(context, "_compute", broken)
    since = quote((served.until - timedelta(minutes=3)).isoformat())
    page.goto(f"{served.url}/experiments/{KEY}?since={since}")
    page.locator("#error:not([hidden])").wait_for(timeout=60_000)
    assert "warehouse unreachable: connection refused" in page.inner_text("#error")
    assert page.locator("#computing").is_hidden()
    context.views.clear()  # forget the failure for the other tests


def assert_page_shows(page: Any, document: dict[str, Any], method: str) -> None:
    """Every number of ``document`` (`xp results --format json`) is on the page, formatted as the CLI does."""
    assert page.inner_text("#method-name") == method
    assert page.inner_text("#srm-p") == fmt_g(document["srm_p_value"], 3)
    checked = 0
    for metric in document["metrics"]:
        card = page.locator(f'div.card[data-metric="{metric["metric"]}"]')
        for index, variant in enumerate(metric["variants"]):
            row = card.locator(f'tr[data-variation="{variant["variation_id"]}"]')

            def cell(field: str, row: Any = row) -> str:
                return str(row.locator(f'[data-field="{field}"]').inner_text()).strip()

            assert cell("units") == f"{variant['units']:,}", (metric["metric"], variant["name"])
            assert cell("mean") == fmt_g(variant["mean"], 4)
            if index == 0:
                assert cell("lift") == "control"
                continue
            assert cell("lift") == fmt_pct(variant["estimate"])
            if variant["ci_low"] is not None:
                expected = f"[{fmt_pct(variant['ci_low'])}, {fmt_pct(variant['ci_high'])}]"
                assert cell("interval-text") == expected
            if method == "bayesian":
                assert cell("chance_to_win") == fmt_pct(variant["chance_to_win"], sign=False)
            else:
                assert cell("p_value") == fmt_g(variant["p_value"], 3)
            checked += 1
    assert checked >= 10
    guardrails = page.locator("#guardrails div.card[data-metric]")
    assert guardrails.count() == sum(m["role"] == "guardrail" for m in document["metrics"]) > 0


def test_health_page_updates_with_new_traffic(page: Any, served: Served) -> None:
    from dashboards.sample_data import add_traffic

    open_page(page, served, f"/health?experiment={KEY}")
    before = page.inner_text("#units")
    assert before == f"{served.units:,}"
    context = served.app.state.dashboard
    with context.runner.locked():  # the app's queries and this insert share the embedded engine
        add_traffic(
            served.warehouse,
            experiment=KEY,
            variations=3,
            units=40,
            start=datetime.now(UTC) - timedelta(minutes=1),
            minutes=0.5,
            seed=4242,
            prefix="late",
        )
    served.units += 40
    sync_api.expect(page.locator("#units")).to_have_text(f"{served.units:,}", timeout=60_000)
    assert page.inner_text("#lag") != ""  # a number from Kafka, or "unknown": never an error page
    screenshot(page, "health")


def parse_download(fmt: str, path: Path) -> list[dict[str, Any]]:
    import csv
    import io

    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(path.read_text())))
    if fmt == "json":
        return list(json.loads(path.read_text()))
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    rows = list(load_workbook(path, read_only=True).worksheets[0].iter_rows(values_only=True))
    return [dict(zip([str(h).removesuffix(" (UTC)") for h in rows[0]], r, strict=True)) for r in rows[1:]]


def key_of(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for column in columns:
        value = row[column]
        if hasattr(value, "isoformat"):
            value = value.isoformat()[:10] if column == "day" else value.isoformat()
        out.append(str(value)[:10] if column == "day" else str(value))
    return tuple(out)


def test_every_export_downloads_and_parses_back(page: Any, served: Served, tmp_path: Path) -> None:
    open_page(page, served, f"/experiments/{KEY}?method=frequentist")
    with served.app.state.dashboard.runner.locked():
        daily = served.warehouse.query_arrow(
            "SELECT metric, variation_id, day, units FROM xp.daily_metrics WHERE experiment_key = {k:String}",
            {"k": KEY},
        ).to_pylist()
        snapshots = served.warehouse.query_arrow(
            "SELECT metric, variation_id, units FROM xp.results WHERE experiment_key = {k:String}", {"k": KEY}
        ).to_pylist()
    api = page.request.get(f"{served.url}/api/experiments/{KEY}/results?method=frequentist").json()["result"]
    results = [
        {"metric": m["metric"], "variation_id": v["variation_id"], "units": v["units"]}
        for m in api["metrics"]
        for v in m["variants"]
    ]
    expected_rows = {
        "results": (results, ("metric", "variation_id", "units")),
        "daily": (daily, ("metric", "variation_id", "day", "units")),
        "snapshots": (snapshots, ("metric", "variation_id", "units")),
    }
    downloads = 0
    for dataset, (rows, columns) in expected_rows.items():
        for fmt in ("csv", "json", "parquet", "xlsx"):
            with page.expect_download() as info:
                page.click(f'a[data-export="{dataset}.{fmt}"]')
            download = info.value
            assert download.suggested_filename.startswith(f"{KEY}-{dataset}-")
            assert download.suggested_filename.endswith(f".{fmt}")
            path = tmp_path / download.suggested_filename
            download.save_as(path)
            parsed = parse_download(fmt, path)
            assert sorted(key_of(r, columns) for r in parsed) == sorted(key_of(r, columns) for r in rows), (
                dataset,
                fmt,
            )
            downloads += 1
    assert downloads == 12


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("experiments", "/"),
        ("compare", f"/compare?keys={KEY},pricing-page-annual-first"),
        ("quality", "/quality"),
        ("audit", "/audit"),
    ],
)
def test_other_pages_render(page: Any, served: Served, name: str, path: str) -> None:
    open_page(page, served, path)
    if name == "experiments":
        assert page.locator(f'tr[data-key="{KEY}"] [data-field="units"]').inner_text() == f"{served.units:,}"
    if name == "compare":
        assert page.locator("div.card[data-metric]").count() >= 1
    if name == "quality":
        assert page.locator("tr[data-check]").count() >= 4  # the sample's checks (migration 0006)
        assert "null_rate" in page.inner_text("#alerts") and "freshness" not in page.inner_text("#alerts")
        # issue #21: the observed values wrap inside their column instead of widening the page
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    if name == "audit":
        assert page.locator("#changes tbody tr").count() >= 3
    screenshot(page, name)


def test_signing_in_keeps_the_token_out_of_every_url(page: Any, served: Served) -> None:
    """With tokens: the page shows the sign-in form; after signing in, pages, API calls and an export work
    from the HttpOnly cookie, and no request URL carries the token (decision 0039)."""
    from pydantic import SecretStr

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings

    settings = DashboardSettings(
        home=served.home,
        clickhouse_url=None,
        store_wait_seconds=0,
        dashboard_read_tokens=SecretStr("reader-e2e-token"),
        dashboard_results_max_age_seconds=3600,
    )
    app = create_app(settings, served.warehouse, lag_monitor=False)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    with serve_in_thread(app) as url:
        page.goto(f"{url}/experiments/{KEY}")
        page.locator("input[name=token]").fill("reader-e2e-token")
        page.locator("button[type=submit]").click()
        page.locator("body[data-loaded='true'], #error:not([hidden])").first.wait_for(timeout=60_000)
        assert page.locator("#error").is_hidden(), page.inner_text("#error")
        assert page.url == f"{url}/experiments/{KEY}"
        cookies = {c["name"]: c for c in page.context.cookies()}
        cookie = cookies["xp_dashboard_token"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # no script can read it
        link = page.locator("a", has_text="CSV").first
        with page.expect_download() as download:
            link.click()
        assert download.value.failure() is None
        screenshot(page, "results-signed-in")
    assert urls and not any("reader-e2e-token" in u or "token=" in u for u in urls), urls
