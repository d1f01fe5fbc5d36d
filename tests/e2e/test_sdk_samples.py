"""The SDK samples of examples/sdk/ run against a started `xp up` (issue #17 part 3).

Each sample is run as a user would run it (a Flask app, a Node server, a React page in headless
Chromium, an OpenFeature script), asked to assign a set of units and to report purchases, and then:
what it assigned is what `xp assign eval` gives for the same units, every in-experiment assignment
arrived in ClickHouse as exactly one exposure (the samples see each unit twice: the repeat must not
count twice), and every purchase arrived as one event.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sdk_stack import FEATURES, SAMPLES, SdkStack, sdk_stack
from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until

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
    stack: SdkStack, prefix: str, units: Sequence[dict[str, Any]], assigned: Assigned, purchases: int
) -> None:
    """The sample assigned what `xp assign eval` assigns; its exposures and purchases are in ClickHouse
    exactly once."""
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
    like = {"p": f"{prefix}-%"}
    exposures = stack.wait_for_rows(
        "SELECT unit_id, experiment_key, variation_id, source FROM xp.exposures FINAL"
        " WHERE unit_id LIKE {p:String} ORDER BY unit_id, experiment_key",
        like,
        len(expected_exposures),
    )
    key = lambda row: (row["unit_id"], row["experiment_key"])  # noqa: E731
    assert sorted(({**e, "source": "sdk"} for e in expected_exposures), key=key) == sorted(exposures, key=key)
    events = stack.wait_for_rows(
        "SELECT unit_id, event_name, value FROM xp.events WHERE unit_id LIKE {p:String} ORDER BY unit_id",
        like,
        purchases,
    )
    sent = [
        {"unit_id": unit["id"], "event_name": "purchase", "value": purchase_amount(i)}
        for i, unit in enumerate(units[:purchases])
    ]
    assert sorted(events, key=lambda r: r["unit_id"]) == sorted(sent, key=lambda r: r["unit_id"])


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
        refused = client.post("/purchase", json={"user": "", "amount": "lots"})
        assert refused.status_code == 400
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
