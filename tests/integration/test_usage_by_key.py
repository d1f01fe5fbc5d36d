"""Usage per client key and dashboard token on chDB (decision 0092): the service's counts and the dashboard's
page views land in xp.usage_daily (the dashboard flushes on shutdown), export runs are in xp.export_runs,
and `compute_activity` — what
`xp activity` and the Activity page show — reports them by key id, equal to a direct sum of the table;
no key or token is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from assignment.service.app import build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from jobs.activity import compute_activity
from jobs.exports.runs import ExportRun, store_export_runs
from tests.unit.service.conftest import US_UNITS, make_service
from xpcore.kafka.topics import EXPOSURES
from xpcore.usage import flush_usage, key_id
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

CLIENT, READER, ADMIN = "usage-client-key", "usage-read-token", "usage-admin-token"


def test_usage_by_key_reaches_the_activity_roll_up(warehouse: Warehouse, tmp_path: Path) -> None:
    service = make_service(keys=KeyRing.from_secrets(SecretStr(CLIENT), SecretStr(ADMIN)))
    with TestClient(build_app(service)) as client:
        for unit in US_UNITS[:30]:
            assert client.post(
                "/v1/assign", json={"attributes": unit}, headers={"X-XP-Key": CLIENT}
            ).is_success
    assert flush_usage(warehouse, service.usage) > 0
    assert flush_usage(warehouse, service.usage) == 0  # drained: nothing counted twice

    settings = DashboardSettings(
        home=tmp_path / "home",
        clickhouse_url=None,
        store_wait_seconds=0,
        dashboard_read_tokens=SecretStr(READER),
        dashboard_admin_tokens=SecretStr(ADMIN),
    )
    with TestClient(create_app(settings, warehouse, lag_monitor=False)) as dashboard:
        for path in ("/health", "/health", "/quality"):
            assert dashboard.get(path, headers={"Authorization": f"Bearer {READER}"}).status_code == 200
        assert dashboard.get("/health").status_code == 401  # no token: no page, no view counted
    # the app's shutdown flushed its page views

    now = datetime.now(UTC)
    ran = now - timedelta(minutes=1)
    runs = [
        ExportRun(f"r{i}", name, "events", "csv", "/tmp/x", f"f{i}", 1, 1, ran, ran, status)
        for i, (name, status) in enumerate([("daily", "ok"), ("daily", "ok"), ("daily", "failed")])
    ]
    store_export_runs(warehouse, runs)
    document = compute_activity(warehouse, since=now - timedelta(days=1), now=now)
    by_key = {(r["kind"], r["subject"]): r["count"] for r in document["usage_by_key"]}
    direct = warehouse.query_arrow(
        "SELECT toString(kind) AS kind, subject, toUInt64(sum(count)) AS n"
        " FROM xp.usage_daily GROUP BY kind, subject"
    ).to_pylist()
    exports = warehouse.query_arrow(
        "SELECT concat(export_name, ' ', status) AS subject, count() AS n"
        " FROM xp.export_runs GROUP BY subject"
    ).to_pylist()
    assert by_key == {(r["kind"], r["subject"]): r["n"] for r in direct} | {
        ("exports_run", r["subject"]): r["n"] for r in exports
    }
    assert by_key[("exports_run", "daily ok")] == 2 and by_key[("exports_run", "daily failed")] == 1
    assert by_key[("service_requests", f"{key_id(CLIENT)} assign")] == 30
    # exactly the exposures the service sent
    assert isinstance(service.sink, MemorySink)
    sent = sum(topic == EXPOSURES for topic, _, _ in service.sink.records)
    assert sent > 0 and by_key[("service_exposures", key_id(CLIENT))] == sent
    assert by_key[("dashboard_views", f"{key_id(READER)} health")] == 2
    assert by_key[("dashboard_views", f"{key_id(READER)} quality")] == 1
    assert not any(s.startswith("none") for k, s in by_key if k == "dashboard_views")
    stored = warehouse.query_arrow("SELECT groupArray(subject) AS s FROM xp.usage_daily").to_pylist()[0]["s"]
    assert not any(secret in subject for subject in stored for secret in (CLIENT, READER, ADMIN))
