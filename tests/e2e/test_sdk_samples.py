"""The SDK samples of examples/sdk/ run against a started `xp up` (issue #17 part 3).

Each sample is run as a user would run it (a Flask app, a Node server, a React page in headless
Chromium, an OpenFeature script), asked to assign a set of units and to report purchases, and then:
what it assigned is what `xp assign eval` gives for the same units, every in-experiment assignment
arrived in ClickHouse as exactly one exposure (the samples see each unit twice: the repeat must not
count twice), and every purchase arrived as one event.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sdk_stack import FEATURES, SAMPLES, SdkStack, sdk_stack
from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from xpcore.kafka.topics import EVENTS, EXPOSURES

pytestmark = pytest.mark.e2e

__all__ = ["sdk_stack"]  # the module-scoped fixture

COUNTRIES = ("US", "DE", "CA", "BR")


def make_units(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-u{i}", "country": COUNTRIES[i % len(COUNTRIES)]} for i in range(count)]


def purchase_amount(index: int) -> float:
    return round(5.0 + index * 1.25, 2)


Assigned = dict[str, dict[str, dict[str, Any]]]
"""unit id → feature key → {value, in_experiment, variation_id} as the sample reported it."""


def check_sample(
    stack: SdkStack,
    prefix: str,
    units: Sequence[dict[str, Any]],
    assigned: Assigned,
    purchases: int,
    *,
    source: str = "sdk",
    min_sends: int = 2,
) -> None:
    """The sample assigned what `xp assign eval` assigns; its exposures (sent at least ``min_sends``
    times each, by ``source``) and purchases are in ClickHouse exactly once."""
    expected_exposures = []
    for feature in FEATURES:
        evaluated = stack.assign_eval(feature, units)
        for unit, ours in zip(units, evaluated, strict=True):
            theirs = assigned[unit["id"]][feature]
            assert (theirs["value"], theirs["in_experiment"], theirs["variation_id"]) == (
                ours["value"],
                ours["in_experiment"],
                ours["variation_id"],
            ), (prefix, feature, unit)
            if ours["in_experiment"]:
                expected_exposures.append(
                    {
                        "unit_id": unit["id"],
                        "experiment_key": ours["experiment_key"],
                        "variation_id": ours["variation_id"],
                    }
                )
    in_and_out = {a[f]["in_experiment"] for a in assigned.values() for f in FEATURES}
    assert in_and_out == {True, False}  # the units cover both: exposures only for units in an experiment

    # Every exposure went to Kafka (at least twice when the sample re-sends: it sees each unit twice),
    # each purchase once.
    prefix_ = f"{prefix}-"
    sent_exposures = stack.records_sent(EXPOSURES, prefix_, min_sends * len(expected_exposures))
    seen = Counter((e["unit_id"], e["experiment_key"], e["variation_id"]) for e in sent_exposures)
    wanted = {(e["unit_id"], e["experiment_key"], e["variation_id"]) for e in expected_exposures}
    assert set(seen) == wanted and min(seen.values()) >= min_sends, seen
    assert {e["source"] for e in sent_exposures} == {source}
    sent_events = stack.records_sent(EVENTS, prefix_, purchases)
    assert len(sent_events) == purchases

    # Once the stream worker has committed all of it, ClickHouse holds each exposure and event once.
    stack.wait_until_loaded([EXPOSURES, EVENTS])
    like = {"p": f"{prefix}-%"}
    exposures = stack.sql(
        "SELECT unit_id, experiment_key, variation_id, source FROM xp.exposures"
        " WHERE unit_id LIKE {p:String}",
        like,
    )
    key = lambda row: (row["unit_id"], row["experiment_key"])  # noqa: E731
    assert sorted(exposures, key=key) == sorted(
        ({**e, "source": source} for e in expected_exposures), key=key
    )
    events = stack.sql("SELECT unit_id, event_name, value FROM xp.events WHERE unit_id LIKE {p:String}", like)
    purchased = [
        {"unit_id": unit["id"], "event_name": "purchase", "value": purchase_amount(i)}
        for i, unit in enumerate(units[:purchases])
    ]
    assert sorted(events, key=lambda r: r["unit_id"]) == sorted(purchased, key=lambda r: r["unit_id"])


@contextmanager
def running(command: list[str], env: dict[str, str], port: int, log: Path, cwd: Path) -> Iterator[str]:
    """A sample's server as a subprocess, until it answers on ``port``; stopped after the block."""
    with log.open("w") as sink:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(
            listening, timeout=60, interval=0.2, message=lambda: f"{command}:\n{log.read_text()[-3000:]}"
        )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def drive_backend(url: str, units: Sequence[dict[str, Any]], purchases: int) -> Assigned:
    """Ask a backend sample for each unit's assignments (twice: the repeat re-tracks) and purchases."""
    assigned: Assigned = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            for unit in units:
                answer = client.get("/checkout", params={"user": unit["id"], "country": unit["country"]})
                assert answer.status_code == 200, answer.text
                assigned[unit["id"]] = answer.json()["features"]
        for i, unit in enumerate(units[:purchases]):
            answer = client.post("/purchase", json={"user": unit["id"], "amount": purchase_amount(i)})
            assert answer.status_code == 202, answer.text
        # bad input is refused with a clear error, and nothing reaches the collector
        assert client.get("/checkout").status_code == 400
        for body in (
            {"user": "", "amount": 3},
            {"user": "x", "amount": "lots"},
            {"user": ["x"], "amount": 1},
        ):
            refused = client.post("/purchase", json=body)
            assert refused.status_code == 400 and "error" in refused.json(), body
        not_json = client.post(
            "/purchase", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
    return assigned


def test_python_sample_flask_with_the_growthbook_sdk(sdk_stack: SdkStack, tmp_path: Path) -> None:
    units = make_units("py", 24)
    (port,) = free_ports(1)
    env = {**os.environ, "XP_SERVICE_URL": sdk_stack.service_url, "XP_CLIENT_KEY": sdk_stack.client_key}
    app = SAMPLES / "python" / "app.py"
    with running(
        [sys.executable, str(app), "--port", str(port)], env, port, tmp_path / "app.log", tmp_path
    ) as url:
        assigned = drive_backend(url, units, purchases=6)
    check_sample(sdk_stack, "py", units, assigned, purchases=6)


NODE = shutil.which("node")
NODE_SAMPLE = SAMPLES / "node"


def test_node_sample_with_the_growthbook_javascript_sdk(sdk_stack: SdkStack, tmp_path: Path) -> None:
    if NODE is None:
        pytest.skip("node not found: the Node sample needs Node.js 20+")
    if not (NODE_SAMPLE / "node_modules" / "@growthbook" / "growthbook").is_dir():
        pytest.fail("examples/sdk/node/node_modules is missing: run `make setup` (npm ci)")
    units = make_units("node", 24)
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "XP_SERVICE_URL": sdk_stack.service_url,
        "XP_CLIENT_KEY": sdk_stack.client_key,
        "PORT": str(port),
    }
    with running([NODE, "server.mjs"], env, port, tmp_path / "node.log", NODE_SAMPLE) as url:
        assigned = drive_backend(url, units, purchases=5)
    check_sample(sdk_stack, "node", units, assigned, purchases=5)


CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REACT_BUILD = SAMPLES / "react" / "dist"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "sdk-samples"


def static_site(directory: Path, config: dict[str, str]) -> Any:
    """The built page and its config.json, as any static file server would serve them."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def config_json(_request: Any) -> JSONResponse:
        return JSONResponse(config)

    return Starlette(
        routes=[
            Route("/config.json", config_json),
            Mount("/", StaticFiles(directory=directory, html=True)),
        ]
    )


def test_react_sample_in_headless_chromium(sdk_stack: SdkStack, tmp_path: Path) -> None:
    from tests.fixtures.http import serve_in_thread

    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (make test-e2e installs Debian's; or set CHROMIUM)")
    if shutil.which("node") is None:
        pytest.skip("node not found: the React sample is built with Node.js 20+ and npm")
    if not (REACT_BUILD / "app.js").is_file():
        pytest.fail("examples/sdk/react/dist/app.js is missing: run `make setup` (npm ci and the build)")
    from playwright.sync_api import sync_playwright

    units = make_units("react", 8)
    purchases = 4
    config = {"serviceUrl": sdk_stack.service_url, "clientKey": sdk_stack.client_key}
    assigned: Assigned = {}
    errors: list[str] = []
    with serve_in_thread(static_site(REACT_BUILD, config)) as site, sync_playwright() as playwright:
        assert site.split(":")[-1] != sdk_stack.service_url.split(":")[-1]  # another origin: CORS applies
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda m: errors.append(f"{m.text} ({m.location.get('url')})") if m.type == "error" else None,
            )
            for visit in range(2):  # a reload re-sends the exposures: they must not count twice
                for i, unit in enumerate(units):
                    page.goto(f"{site}/?user={unit['id']}&country={unit['country']}")
                    page.locator("body[data-ready='true']").wait_for(timeout=30_000)
                    features = {}
                    for feature in FEATURES:
                        cell = page.locator(f'[data-feature="{feature}"]')
                        variation = cell.get_attribute("data-variation-id")
                        features[feature] = {
                            "value": json.loads(cell.get_attribute("data-value") or "null"),
                            "in_experiment": cell.get_attribute("data-in-experiment") == "true",
                            "variation_id": int(variation) if variation else None,
                        }
                    assigned[unit["id"]] = features
                    tracked = sum(f["in_experiment"] for f in features.values())
                    page.locator(f"#sent[data-exposures='{tracked}']").wait_for(
                        state="attached", timeout=30_000
                    )
                    if visit == 0 and i < purchases:
                        page.fill("#amount", str(purchase_amount(i)))
                        page.click("#buy")
                        page.locator("#sent[data-purchases='1']").wait_for(state="attached", timeout=30_000)
                    if visit == 0 and i == 0:
                        ARTIFACTS.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(ARTIFACTS / "react.png"), full_page=True)
            # a page may call the client routes cross-origin, never the admin routes (decision 0040)
            refused = page.evaluate(
                """url => fetch(url + "/v1/overrides", {method: "POST",
                     headers: {"Content-Type": "application/json", "X-XP-Key": "any"}, body: "{}"})
                   .then(r => "answered " + r.status, () => "blocked")""",
                sdk_stack.service_url,
            )
            assert refused == "blocked"
        finally:
            browser.close()
    unexpected = [e for e in errors if "/v1/overrides" not in e and "favicon.ico" not in e]
    assert unexpected == [], errors
    check_sample(sdk_stack, "react", units, assigned, purchases=purchases)


def test_the_service_lets_the_samples_origin_call_its_client_routes_only(sdk_stack: SdkStack) -> None:
    """What the React sample relies on: a CORS preflight from its origin to the collector is allowed with
    the headers it sends; the admin routes answer no page (decision 0040)."""
    origin = {"Origin": "http://127.0.0.1:5173"}
    preflight = httpx.options(
        f"{sdk_stack.service_url}/v1/events",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-xp-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] in ("*", origin["Origin"])
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-xp-key"} <= allowed
    payload = httpx.get(f"{sdk_stack.service_url}/api/features/{sdk_stack.client_key}", headers=origin)
    assert payload.status_code == 200 and payload.headers["access-control-allow-origin"] in (
        "*",
        origin["Origin"],
    )
    assert set(FEATURES) <= set(payload.json()["features"])
    admin = httpx.post(f"{sdk_stack.service_url}/v1/overrides", json={}, headers={**origin, "X-XP-Key": "x"})
    assert admin.status_code == 403 and "access-control-allow-origin" not in admin.headers
    wrong_key = httpx.get(f"{sdk_stack.service_url}/api/features/not-the-key", headers=origin)
    assert wrong_key.status_code == 401


def run_openfeature_sample(
    stack: SdkStack, units: Sequence[dict[str, Any]], purchases: int, provider: str
) -> Assigned:
    lines = [
        json.dumps({**unit, **({"purchase": purchase_amount(i)} if i < purchases else {})})
        for i, unit in enumerate(units)
    ]
    env = {**os.environ, "XP_SERVICE_URL": stack.service_url, "XP_CLIENT_KEY": stack.client_key}
    result = subprocess.run(
        [sys.executable, str(SAMPLES / "openfeature" / "sample.py"), "--provider", provider],
        input="\n".join(lines) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assigned: Assigned = {}
    for line in result.stdout.splitlines():
        answer = json.loads(line)
        features = {}
        for key, details in answer["flags"].items():
            assert details["error_code"] is None, (answer["id"], key, details)
            split = details["reason"] == "SPLIT"  # OpenFeature's reason for an experiment's assignment
            variation = details["metadata"].get("variation_id", details["variant"])
            features[key] = {
                "value": details["value"],
                "in_experiment": split,
                "variation_id": int(variation) if split else None,
            }
        assigned[answer["id"]] = features
    assert list(assigned) == [unit["id"] for unit in units]
    return assigned


def serves_ofrep(stack: SdkStack) -> bool:
    answer = httpx.post(
        f"{stack.service_url}/ofrep/v1/evaluate/flags/{FEATURES[0]}",
        json={"context": {"targetingKey": "probe"}},
        headers={"Authorization": f"Bearer {stack.client_key}"},
    )
    return answer.status_code == 200


@pytest.mark.parametrize("provider", ["growthbook", "ofrep"])
def test_openfeature_sample(sdk_stack: SdkStack, provider: str) -> None:
    """GrowthBook's provider assigns in the process and the sample sends the exposures; the OFREP
    provider asks the service, which assigns and records them itself (once per unit: its own dedup)."""
    if provider == "ofrep" and not serves_ofrep(sdk_stack):
        pytest.skip("the service does not serve OFREP (/ofrep/v1/evaluate/flags/…: issue #17 part 1)")
    prefix = "of" if provider == "growthbook" else "ofrep"
    units = make_units(prefix, 20)
    assigned = run_openfeature_sample(sdk_stack, units, purchases=5, provider=provider)
    again = run_openfeature_sample(sdk_stack, units, purchases=0, provider=provider)  # a second process
    assert again == assigned
    if provider == "growthbook":
        check_sample(sdk_stack, prefix, units, assigned, purchases=5)
    else:
        check_sample(sdk_stack, prefix, units, assigned, purchases=5, source="service", min_sends=1)
