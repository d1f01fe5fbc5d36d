"""Alerts with Kafka down: rows in xp.alerts and a Slack-compatible POST to a real local HTTP receiver;
the same ongoing problem is not posted again within the quiet period, its resolution is, and after the
quiet period a reminder is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pytest

from assignment.registry import ExperimentSpec, RegistrySnapshot, VariationSpec
from quality.run import run_quality
from quality.settings import QualitySettings
from schemas import Exposure, MetricEvent
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.factories import make_exposure
from tests.fixtures.kafka import free_ports
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration


class Receiver:
    """A local webhook endpoint that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                assert self.headers["Content-Type"] == "application/json"
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/xp"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


def test_webhook_alerts_once_then_on_resolve_then_after_quiet_period(
    warehouse: Warehouse, receiver: Receiver, tmp_path: Path
) -> None:
    (closed_port,) = free_ports(1)
    settings = QualitySettings(
        home=tmp_path / "xp-home",
        kafka_bootstrap=f"127.0.0.1:{closed_port}",  # Kafka is down
        quality_kafka_timeout=1.0,
        quality_webhook_url=receiver.url,
        quality_quiet_minutes=60,
        quality_stream_max_age_minutes=600,
        quality_report_dir=tmp_path / "reports",
    )
    known = ExperimentSpec(
        "exp", "exp", ExperimentStatus.RUNNING, "exp", (VariationSpec(0, "v0", "V0", 1.0),)
    )
    registry = RegistrySnapshot(experiments=MappingProxyType({"exp": known}))
    start = datetime.now(UTC)
    # one exposure loaded two days ago and nothing since: the stream is stale, and the rollups and
    # results (never computed) are overdue, since their input has been there longer than their limit
    old = start - timedelta(hours=48)
    exposures = to_arrow([make_exposure("u0", 0, old, 0, False)], Exposure)
    at = pa.array([old], pa.timestamp("ms", tz="UTC"))
    warehouse.insert_arrow("xp.exposures", exposures.append_column("ingested_at", at))

    first = run_quality(settings, warehouse=warehouse, registry=registry, now=start)
    stale = {o.fingerprint for o in first.failures}
    assert {"freshness||exposures", "freshness||events", "freshness||results"} <= stale
    assert (
        first.delivery.topic_error is not None and "not delivered to xp.alerts" in first.delivery.topic_error
    )
    assert "FAILED" in first.summary() and "webhook: posted" in first.summary()
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["text"].startswith(f"xpstream data quality: {len(stale)} firing, 0 resolved")
    assert any("*freshness* events" in b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    rows = warehouse.query_arrow("SELECT fingerprint, state FROM xp.alerts").to_pylist()
    assert {r["fingerprint"] for r in rows} == stale and {r["state"] for r in rows} == {"firing"}

    second = run_quality(settings, warehouse=warehouse, registry=registry, now=start + timedelta(minutes=10))
    assert {o.fingerprint for o in second.failures} == stale
    assert second.delivery.records == 0 and len(receiver.bodies) == 1  # same problem, quiet period

    loaded = datetime.now(UTC)
    warehouse.insert_arrow("xp.exposures", to_arrow([make_exposure("u1", 0, loaded, 0, False)], Exposure))
    event = MetricEvent(event_id="e1", unit_id="u1", event_name="purchase", value=1.0, occurred_at=loaded)
    warehouse.insert_arrow("xp.events", to_arrow([event], MetricEvent))
    third = run_quality(settings, warehouse=warehouse, registry=registry, now=loaded + timedelta(minutes=1))
    assert len(receiver.bodies) == 2
    resolved = receiver.bodies[1]
    assert resolved["text"].startswith("xpstream data quality: 0 firing, 2 resolved")
    assert {"freshness||exposures", "freshness||events"}.isdisjoint({o.fingerprint for o in third.failures})

    later = loaded + timedelta(minutes=61)
    fourth = run_quality(settings, warehouse=warehouse, registry=registry, now=later)
    still = {o.fingerprint for o in fourth.failures} & stale
    assert still and len(receiver.bodies) == 3  # still failing after the quiet period: a reminder
    assert "(still failing)" in receiver.bodies[2]["text"]
    states = warehouse.query_arrow(
        "SELECT fingerprint, argMax(state, at) AS latest FROM xp.alerts GROUP BY fingerprint"
    ).to_pylist()
    latest = {r["fingerprint"]: r["latest"] for r in states}
    assert latest["freshness||events"] == "resolved" and all(latest[f] == "firing" for f in still)


def test_cli_exit_codes_with_and_without_strict(tmp_path: Path) -> None:
    """Exit 0 when the checks ran whatever they found; --strict exits 1 when any failed (Kafka down)."""
    (closed_port,) = free_ports(1)
    env = {
        **os.environ,
        "XP_HOME": str(tmp_path / "xp-home"),
        "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        "XP_QUALITY_KAFKA_TIMEOUT": "1",
        "XP_QUALITY_REGISTRY_FILE": str(
            Path(__file__).resolve().parents[2] / "examples" / "experiments.yaml"
        ),
    }
    for name in ("XP_CLICKHOUSE_URL", "XP_API_URL", "XP_QUALITY_WEBHOOK_URL"):
        env.pop(name, None)
    command = [sys.executable, "-m", "xpstream.cli", "jobs", "run", "quality", "--format", "json"]
    strict = subprocess.run([*command, "--strict"], env=env, capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1, strict.stderr
    document = json.loads(strict.stdout)
    assert document["success"] is False
    assert {"check": "freshness", "table": "events", "success": False}.items() <= next(
        c for c in document["checks"] if c["check"] == "freshness" and c["table"] == "events"
    ).items()
    assert "report:" in strict.stderr
    relaxed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert relaxed.returncode == 0, relaxed.stderr
    assert json.loads(relaxed.stdout)["success"] is False
