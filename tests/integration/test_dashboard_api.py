"""The dashboards' JSON API and exports against a real chDB store seeded with dashboards.sample_data.

Results must be the numbers `xp results` computes (same code path: compute_experiment_result); counts on
the list and health pages must equal a recount of what was seeded; every export parses back to the same
rows (csv, json, parquet via pyarrow, xlsx via openpyxl); quality pages render an empty state without the
quality tables and real history with them; tokens gate everything off loopback.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.sample_data import SampleData, seed_sample_data
from dashboards.settings import DashboardSettings
from jobs.results.compute import compute_experiment_result
from tests.fixtures.waiting import wait_until
from tests.fixtures.warehouse import opened_warehouse
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

KEY = "checkout-button"


class Seeded:
    def __init__(self, settings: DashboardSettings, warehouse: Warehouse, data: SampleData) -> None:
        self.settings, self.warehouse, self.data = settings, warehouse, data

    def client(self, **overrides: Any) -> TestClient:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return TestClient(create_app(settings, self.warehouse, lag_monitor=False))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One seeded store for the module (seeding takes seconds); closed after the module."""
    home: Path = tmp_path_factory.mktemp("dashboard") / "xp-home"
    settings = DashboardSettings(home=home, clickhouse_url=None, store_wait_seconds=0)
    with opened_warehouse(settings) as warehouse:  # the server path under XP_TEST_WAREHOUSE
        data = seed_sample_data(warehouse, units=1200, minutes=30, quality=False)
        yield Seeded(settings, warehouse, data)


@pytest.fixture(scope="module")
def client(seeded: Seeded) -> Iterator[TestClient]:
    """Units so far counted on every request (exact recounts; the served copy has its own test)."""
    with seeded.client(dashboard_units_max_age_seconds=0) as test_client:
        yield test_client


def spec_of(client: TestClient, key: str) -> Any:
    return client.app.state.dashboard.registry.snapshot().experiments[key]  # type: ignore[attr-defined]


def without_computed_at(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("computed_at", "data_as_of")}


def cli_result(client: TestClient, seeded: Seeded, **options: Any) -> dict[str, Any]:
    """What `xp results` computes (xpstream/cli/results.py): the experiment's plan with the overrides."""
    from jobs.results.compute import experiment_plan

    snapshot = client.app.state.dashboard.registry.snapshot()  # type: ignore[attr-defined]
    spec = snapshot.experiments[KEY]
    plan = experiment_plan(snapshot, spec).with_overrides(method=options.pop("method", None))
    result = compute_experiment_result(
        seeded.warehouse, spec, plan=plan, covariate_days=seeded.settings.etl_covariate_days, **options
    )
    document: dict[str, Any] = json.loads(json.dumps(result.to_json()))
    return document


def computed_view(client: TestClient, params: dict[str, str], key: str = KEY) -> dict[str, Any]:
    """A custom view (window or segment): 202 at once while it computes (or 200 when a fresh result is
    kept), then, once the one background computation finished, 200 with the page document."""
    url = f"/api/experiments/{key}/results"
    first = client.get(url, params=params)
    assert first.status_code in (200, 202), first.text
    if first.status_code == 202:
        computing = first.json()["computing"]
        assert computing["state"] in ("queued", "computing") and computing["experiment"] == key
        assert first.headers["Retry-After"] == str(computing["retry_after_seconds"]) == "1"
        client.app.state.dashboard.views.wait_all(300)  # type: ignore[attr-defined]
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    assert document["shown"]["source"] == "computed"
    return document


@pytest.mark.parametrize("method", ["sequential", "frequentist", "bayesian"])
def test_results_equal_the_cli_code_path(client: TestClient, seeded: Seeded, method: str) -> None:
    until = seeded.data.now + timedelta(minutes=1)
    page = computed_view(client, {"method": method, "until": until.isoformat()})
    expected_json = cli_result(client, seeded, method=method, until=until)
    # same_numbers: the warehouse may sum floats in another order from one run to the next
    assert same_numbers(without_computed_at(page["result"]), without_computed_at(expected_json))
    assert page["result"]["method"] == method
    roles = {m["metric"]: m["role"] for m in expected_json["metrics"]}
    assert [m["metric"] for m in page["guardrails"]] == [m for m, r in roles.items() if r == "guardrail"]
    assert all(m["role"] != "guardrail" for m in page["primary_and_secondary"])
    units = sum(v["units"] for v in page["result"]["metrics"][0]["variants"])
    assert units == seeded.data.units[KEY]


def test_segment_breakdown_equals_the_cli(client: TestClient, seeded: Seeded) -> None:
    until = seeded.data.now + timedelta(minutes=1)
    params = {"segment": "country", "top": "3", "until": until.isoformat()}
    page = computed_view(client, params)
    expected = cli_result(client, seeded, segment="country", top=3, until=until)
    assert page["segments"] == expected["segments"]
    labels = [v["segment"] for v in page["segments"]["values"]]
    assert labels[:3] == ["US", "DE", "BR"] or set(labels[:3]) <= {"US", "DE", "BR", "IN", "FR"}
    assert sum(v["units"] for v in page["segments"]["values"]) == seeded.data.units[KEY]


def test_results_trend_comes_from_the_snapshots(client: TestClient, seeded: Seeded) -> None:
    page = client.get(f"/api/experiments/{KEY}/results").json()
    stored = seeded.warehouse.query_arrow(
        "SELECT uniqExact(computed_at) AS runs, countIf(estimate IS NOT NULL) AS with_lift FROM xp.results "
        "WHERE experiment_key = {k:String} AND metric = 'conversion' AND variation_id = 1",
        {"k": KEY},
    ).to_pylist()[0]
    series = {s["variation_id"]: s for s in page["trend"]["conversion"]}
    assert sorted(series) == [1, 2]  # treatments only
    points = series[1]["points"]
    assert stored["runs"] == 7  # the first snapshot (no traffic yet) has no lift to draw
    assert len(points) == stored["with_lift"] >= 5
    assert [p["computed_at"] for p in points] == sorted(p["computed_at"] for p in points)
    assert points[-1]["units"] > points[0]["units"]


def test_unknown_experiment_and_bad_method(client: TestClient) -> None:
    assert client.get("/api/experiments/nope/results").status_code == 404
    response = client.get(f"/api/experiments/{KEY}/results", params={"method": "magic"})
    assert response.status_code == 400
    assert "method" in response.json()["error"]


def test_experiments_list_counts_units_and_filters(client: TestClient, seeded: Seeded) -> None:
    listing = client.get("/api/experiments").json()
    by_key = {e["key"]: e for e in listing["experiments"]}
    for key, units in seeded.data.units.items():
        assert by_key[key]["units"] == units
        assert by_key[key]["status"] == "running"
        assert by_key[key]["srm_p_value"] is not None and not by_key[key]["srm_flagged"]
        primary = next(m for m in _results(client, key=key)["metrics"] if m["role"] == "primary")
        assert by_key[key]["headline"]["metric"] == primary["metric"]
    assert by_key[KEY]["open_alerts"] in (None, 0)  # no quality results yet (None: no tables)
    assert set(by_key) >= {"checkout-button", "pricing-page-annual-first", "search-ranking-v2"}
    filtered = client.get("/api/experiments", params={"q": "PRICING"}).json()["experiments"]
    assert [e["key"] for e in filtered] == ["pricing-page-annual-first"]
    running = client.get("/api/experiments", params={"status": "running"}).json()["experiments"]
    assert len(running) == len(listing["experiments"]) and listing["statuses"] == ["running"]
    assert client.get("/api/experiments", params={"status": "stopped"}).json()["experiments"] == []


def test_health_reconciles_with_the_seed(client: TestClient, seeded: Seeded) -> None:
    health = client.get("/api/health", params={"experiment": KEY}).json()
    assert health["units"] == seeded.data.units[KEY]
    exposures = sum(sum(s["values"]) for s in health["exposures_per_minute"])
    assert exposures == seeded.data.units[KEY]  # one exposure per unit, all inside the window
    assert sum(health["ingest_per_minute"]["events"]) == seeded.data.events
    assert sum(health["ingest_per_minute"]["exposures"]) == seeded.data.exposures
    assert sum(health["dead_letters_by_reason"].values()) == seeded.data.dead_letters
    total = seeded.data.events + seeded.data.exposures
    assert health["dead_letter_rate"] == pytest.approx(
        seeded.data.dead_letters / (seeded.data.dead_letters + total)
    )
    assert health["consumer_lag"]["status"] == "unknown"  # monitor off: never an error
    assert len(health["srm_over_time"]) == 7
    assert health["progress"]["units"] == seeded.data.units[KEY]
    assert health["progress"]["planned"] == 30000  # planned_units of the example's analysis: block
    assert [u["name"] for u in health["units_by_variation"]] == ["Blue (control)", "Green", "Orange"]


def test_health_sees_new_traffic(client: TestClient, seeded: Seeded) -> None:
    from dashboards.sample_data import add_traffic

    before = client.get("/api/health", params={"experiment": KEY}).json()
    add_traffic(
        seeded.warehouse,
        experiment=KEY,
        variations=3,
        units=50,
        start=datetime.now(UTC) - timedelta(minutes=2),
        minutes=1,
        seed=991,
        prefix="late",
    )
    seeded.data.units[KEY] += 50
    after = client.get("/api/health", params={"experiment": KEY}).json()
    assert after["units"] == before["units"] + 50


def test_compare_uses_shared_metrics(client: TestClient) -> None:
    document = client.get(
        "/api/compare", params={"keys": "checkout-button,pricing-page-annual-first", "method": "frequentist"}
    ).json()
    assert document["shared_metrics"] == ["conversion", "revenue"]
    assert {r["experiment"] for r in document["rows"]} == {"checkout-button", "pricing-page-annual-first"}
    assert client.get("/api/compare", params={"keys": "checkout-button"}).status_code == 400


def test_audit_lists_registry_changes(client: TestClient, seeded: Seeded) -> None:
    stored = seeded.warehouse.query_arrow("SELECT count() AS n FROM xp.registry").to_pylist()[0]["n"]
    changes = client.get("/api/audit").json()["changes"]
    assert len(changes) == stored > 0
    assert all(c["changed_by"] == "alice@example.com" for c in changes)
    mine = client.get("/api/audit", params={"key": KEY}).json()["changes"]
    assert mine and all(KEY in c["key"] for c in mine)


# ---- exports ------------------------------------------------------------------------------------------


def parse(fmt: str, body: bytes) -> list[dict[str, Any]]:
    """An export's rows as strings-or-numbers, whatever the format."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body.decode())))
    if fmt == "json":
        return list(json.loads(body))
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body)).to_pylist()
    sheet = load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = [str(h).removesuffix(" (UTC)") for h in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def normal(value: Any) -> Any:
    """One spelling per value across formats (csv has strings, xlsx naive datetimes, parquet dates)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()  # a day (xlsx reads dates back as midnight datetimes)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, int | float):
        return round(float(value), 9)
    text = str(value)
    if text in ("True", "False", "true", "false"):
        return text.lower() == "true"
    try:
        return round(float(text), 9)
    except ValueError:
        pass
    if len(text) == 10:
        return text  # a day, as written
    try:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
    except ValueError:
        return text


def normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: normal(v) for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "xlsx"])
def test_exports_parse_back_to_the_same_rows(client: TestClient, seeded: Seeded, fmt: str) -> None:
    # daily aggregates: straight from xp.daily_metrics
    response = client.get(f"/api/experiments/{KEY}/export/daily.{fmt}")
    assert response.status_code == 200
    assert f"{KEY}-daily-" in response.headers["content-disposition"]
    expected = seeded.warehouse.query_arrow(
        "SELECT experiment_key, metric, variation_id, day, units, sum, sum_squares,"
        " if(units = 0, NULL, sum / units) AS mean, computed_at FROM xp.daily_metrics"
        " WHERE experiment_key = {k:String} ORDER BY metric, variation_id, day",
        {"k": KEY},
    ).to_pylist()
    assert expected
    assert normalised(parse(fmt, response.content)) == normalised(expected)

    # stored snapshots: straight from xp.results
    snapshots = parse(fmt, client.get(f"/api/experiments/{KEY}/export/snapshots.{fmt}").content)
    count = seeded.warehouse.query_arrow(
        "SELECT count() AS n FROM xp.results WHERE experiment_key = {k:String}", {"k": KEY}
    ).to_pylist()[0]["n"]
    assert len(snapshots) == count
    assert {r["metric"] for r in snapshots} == {m["metric"] for m in _results(client)["metrics"]}

    # results now: the same values as the results API, one row per metric × variation
    rows = normalised(
        parse(fmt, client.get(f"/api/experiments/{KEY}/export/results.{fmt}?method=frequentist").content)
    )
    document = _results(client, "frequentist")
    expected_rows = [
        {
            "metric": m["metric"],
            "variation_id": v["variation_id"],
            "units": v["units"],
            "mean": v["mean"],
            "estimate": v["estimate"],
            "p_value": v["p_value"],
            "significant": v["significant"],
        }
        for m in document["metrics"]
        for v in m["variants"]
    ]
    picked = [{k: row[k] for k in expected_rows[0]} for row in rows]
    assert picked == normalised(expected_rows)


def _results(client: TestClient, method: str = "sequential", key: str = KEY) -> dict[str, Any]:
    result: dict[str, Any] = client.get(f"/api/experiments/{key}/results", params={"method": method}).json()[
        "result"
    ]
    return result


def test_export_rejects_unknown_format_and_dataset(client: TestClient) -> None:
    assert client.get(f"/api/experiments/{KEY}/export/daily.pdf").status_code == 400
    assert client.get(f"/api/experiments/{KEY}/export/everything.csv").status_code == 400
    assert client.get("/api/experiments/nope/export/daily.csv").status_code == 404


# ---- data quality -------------------------------------------------------------------------------------

DQ_COLUMNS = [
    ("run_id", "String"),
    ("run_at", "DateTime64(3, 'UTC')"),
    ("check", "LowCardinality(String)"),
    ("experiment", "Nullable(String)"),
    ("table_name", "Nullable(String)"),
    ("success", "Bool"),
    ("severity", "LowCardinality(String)"),
    ("observed", "String"),
    ("threshold", "String"),
    ("detail", "String"),
]
ALERT_COLUMNS = [
    ("alert_id", "String"),
    ("fingerprint", "String"),
    ("state", "LowCardinality(String)"),
    ("check", "LowCardinality(String)"),
    ("experiment", "Nullable(String)"),
    ("table_name", "Nullable(String)"),
    ("detail", "String"),
    ("run_id", "String"),
    ("at", "DateTime64(3, 'UTC')"),
]
QUALITY_DDL = [
    f"CREATE TABLE IF NOT EXISTS xp.{name} ({', '.join(f'`{c}` {t}' for c, t in columns)})"
    f" ENGINE MergeTree ORDER BY ({order})"
    for name, columns, order in (
        ("dq_results", DQ_COLUMNS, "run_at, check"),
        ("alerts", ALERT_COLUMNS, "fingerprint, at"),
    )
]


def insert_rows(
    warehouse: Warehouse, table: str, columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]
) -> None:
    """Rows into a table of the quality contract, values bound as parameters."""
    for row in rows:
        names = ", ".join(f"`{c}`" for c, _ in columns)
        holders = ", ".join(f"{{p{i}:{t}}}" for i, (_, t) in enumerate(columns))
        warehouse.command(
            f"INSERT INTO {table} ({names}) VALUES ({holders})", {f"p{i}": v for i, v in enumerate(row)}
        )


def test_quality_empty_state_then_history_and_open_alerts(client: TestClient, seeded: Seeded) -> None:
    exists = seeded.warehouse.query_arrow(
        "SELECT count() AS n FROM system.tables WHERE database = 'xp' AND name IN ('dq_results', 'alerts')"
    ).to_pylist()[0]["n"]
    empty = client.get("/api/quality").json()
    if exists == 0:  # before migration 0006 (QUALITY): the page still renders, with an empty state
        assert empty == {**empty, "available": False, "checks": [], "open_alerts": None}
    else:
        assert empty == {**empty, "available": True, "checks": [], "open_alerts": []}
    assert client.get("/quality").status_code == 200
    for statement in QUALITY_DDL:  # the shared contract (sql/migrations/0006_quality.sql, QUALITY)
        seeded.warehouse.command(statement)
    now = datetime.now(UTC).replace(microsecond=0)
    t1, t2 = now - timedelta(hours=2), now - timedelta(hours=1)
    results = [
        ("r1", t1, "srm", KEY, None, True, "error", "0.4", "0.001", "ok"),
        ("r2", t2, "srm", KEY, None, False, "error", "0.0001", "0.001", "mismatch"),
        ("r2", t2, "freshness", None, "xp.events", True, "warning", "12", "600", "ok"),
    ]
    alerts = [
        ("a1", f"srm|{KEY}|", "firing", "srm", KEY, None, "SRM", "r2", t2),
        ("a2", "freshness||xp.events", "firing", "freshness", None, "xp.events", "late", "r1", t1),
        ("a3", "freshness||xp.events", "resolved", "freshness", None, "xp.events", "ok", "r2", t2),
    ]
    insert_rows(seeded.warehouse, "xp.dq_results", DQ_COLUMNS, results)
    insert_rows(seeded.warehouse, "xp.alerts", ALERT_COLUMNS, alerts)
    response = client.get("/api/quality")
    assert response.status_code == 200, response.text
    quality = response.json()
    assert quality["available"] is True
    checks = {c["check"]: c for c in quality["checks"]}
    assert checks["srm"]["latest"]["success"] is False and checks["srm"]["latest"]["observed"] == 0.0001
    assert (checks["srm"]["runs"], checks["srm"]["failures"]) == (2, 1)
    assert checks["freshness"]["target"] == "xp.events"
    assert [a["fingerprint"] for a in quality["open_alerts"]] == [
        "srm|checkout-button|"
    ]  # freshness resolved
    listing = {e["key"]: e for e in client.get("/api/experiments").json()["experiments"]}
    assert listing[KEY]["open_alerts"] == 1
    assert listing["pricing-page-annual-first"]["open_alerts"] == 0


# ---- auth ---------------------------------------------------------------------------------------------


def test_tokens_gate_pages_api_and_admin(seeded: Seeded) -> None:
    with seeded.client(dashboard_read_tokens="reader", dashboard_admin_tokens="boss") as tokens:
        assert tokens.get("/healthz").status_code == 200
        assert tokens.get("/static/app.css").status_code == 200
        assert tokens.get("/api/audit").status_code == 401
        assert tokens.get("/").status_code == 401
        assert tokens.get("/api/audit", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert tokens.get("/api/audit", headers={"Authorization": "Bearer reader"}).status_code == 200
        assert tokens.get("/?token=reader").status_code == 401  # never in a URL (issue #13)
        signed_in = tokens.post("/login", data={"token": "reader"}, follow_redirects=False)
        assert signed_in.status_code == 303  # the HttpOnly cookie now authenticates the browser
        assert tokens.get("/").status_code == 200
        assert tokens.get(f"/api/experiments/{KEY}/export/daily.csv").status_code == 200
        tokens.cookies.clear()
        assert tokens.post("/api/admin/cache/clear", headers={"X-XP-Key": "reader"}).status_code == 403
        assert tokens.post("/api/admin/cache/clear", headers={"X-XP-Key": "boss"}).status_code == 200
        assert tokens.get("/api/audit", headers={"X-XP-Key": "boss"}).status_code == 200


def test_open_app_on_loopback_needs_no_token(client: TestClient) -> None:
    assert client.get("/api/audit").status_code == 200
    assert client.post("/api/admin/cache/clear").status_code == 200


def test_grafana_panel_sql_runs_on_the_warehouse(seeded: Seeded) -> None:
    """The generated Grafana SQL (macros replaced as Grafana would) runs and returns rows."""
    import re

    grafana = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
    answered = 0
    for path in sorted(grafana.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            sql = panel["targets"][0]["rawSql"]
            sql = sql.replace("$__fromTime", "toDateTime64(now() - INTERVAL 1 DAY, 3, 'UTC')")
            sql = sql.replace("${experiment}", KEY)
            assert not re.search(r"\$\{?\w+", sql), sql
            answered += seeded.warehouse.query_arrow(sql).num_rows > 0
    assert answered >= 8


# ---- results page: the newest snapshot at once, refreshed in the background (decision 0020) ----------


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A results document without what a stored snapshot does not keep (computed_at aside, compared
    apart): srm_error, each metric's cuped decision and each variant's p_value_adjusted."""
    out = {k: v for k, v in document.items() if k not in ("computed_at", "srm_error")}
    out["metrics"] = [
        {**m, "cuped": None, "variants": [{**v, "p_value_adjusted": None} for v in m["variants"]]}
        for m in document["metrics"]
    ]
    return out


def same_numbers(a: Any, b: Any) -> bool:
    """Equal documents, floats to 1e-9 relative: two runs of the same computation may sum floats in a
    different order (parallel aggregation)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_numbers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def store_stats_snapshot(client: TestClient, seeded: Seeded) -> Any:
    """What `xp jobs run stats` stores for KEY now (the experiment's plan), computed_at in whole ms."""
    from jobs.results.compute import experiment_plan
    from jobs.results.snapshots import store_results

    snapshot = client.app.state.dashboard.registry.snapshot()  # type: ignore[attr-defined]
    spec = snapshot.experiments[KEY]
    now = datetime.now(UTC)
    result = compute_experiment_result(
        seeded.warehouse,
        spec,
        plan=experiment_plan(snapshot, spec),
        covariate_days=seeded.settings.etl_covariate_days,
        computed_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
    )
    store_results(seeded.warehouse, [result])
    return result


def test_results_page_shows_the_newest_snapshot_at_once(seeded: Seeded) -> None:
    with seeded.client(dashboard_results_max_age_seconds=3600) as fresh:
        stored = store_stats_snapshot(fresh, seeded)
        context = fresh.app.state.dashboard  # type: ignore[attr-defined]
        page = fresh.get(f"/api/experiments/{KEY}/results").json()
        assert page["shown"]["source"] == "snapshot"
        assert page["shown"]["computed_at"] == page["result"]["computed_at"] == stored.computed_at.isoformat()
        assert page["shown"]["refreshing"] is False and not context.background.in_flight((KEY,))
        expected = json.loads(json.dumps(stored.to_json()))
        assert comparable(page["result"]) == comparable(expected)
        # `xp results` at the same moment (the sample's events run up to 2 min into the future)
        same = {"until": stored.computed_at, "computed_at": stored.computed_at}
        assert same_numbers(comparable(page["result"]), comparable(cli_result(fresh, seeded, **same)))
        assert page["result"]["analysis"]["cuped"] is True  # the experiment's plan, as the stats job used it
        export = parse("json", fresh.get(f"/api/experiments/{KEY}/export/results.json").content)
        assert {(r["metric"], r["variation_id"], r["units"]) for r in export} == {
            (m["metric"], v["variation_id"], v["units"]) for m in expected["metrics"] for v in m["variants"]
        }


def test_an_old_snapshot_is_refreshed_in_the_background_once(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"/api/experiments/{KEY}/results"
    with seeded.client(dashboard_results_max_age_seconds=0) as fresh:
        context = fresh.app.state.dashboard  # type: ignore[attr-defined]
        compute = context._compute
        release, calls = threading.Event(), []

        def held(spec: Any, plan: Any, **options: Any) -> Any:
            calls.append(spec.key)
            assert release.wait(120)
            return compute(spec, plan, **options)

        monkeypatch.setattr(context, "_compute", held)
        first, second = fresh.get(url).json(), fresh.get(url).json()
        for page in (first, second):  # shown at once, while the one refresh is held
            assert page["shown"]["source"] == "snapshot" and page["shown"]["refreshing"] is True
        assert calls == [KEY]  # single-flight: the second request did not start another computation
        release.set()
        context.background.wait(120)
        third = fresh.get(url).json()
        context.background.wait(120)
        assert third["shown"]["source"] == "computed"
        assert third["shown"]["computed_at"] > first["shown"]["computed_at"]
        at = datetime.fromisoformat(third["result"]["computed_at"])
        expected = cli_result(fresh, seeded, until=at, computed_at=at)
        assert same_numbers(comparable(third["result"]), comparable(expected))


def test_a_window_answers_202_at_once_then_the_cli_numbers(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`?since=&until=`: the request never waits for the computation; polls join the one computation, then
    see the numbers of `xp results --since … --until … --format json`; the export of that view reuses it."""
    since, until = seeded.data.now - timedelta(minutes=20), seeded.data.now + timedelta(minutes=1)
    params = {"since": since.isoformat(), "until": until.isoformat(), "method": "frequentist"}
    url = f"/api/experiments/{KEY}/results"
    with seeded.client() as fresh:
        context = fresh.app.state.dashboard  # type: ignore[attr-defined]
        compute = context._compute
        release, calls = threading.Event(), []

        def held(spec: Any, plan: Any, **options: Any) -> Any:
            calls.append(options)
            assert release.wait(120)
            return compute(spec, plan, **options)

        monkeypatch.setattr(context, "_compute", held)
        first, second = fresh.get(url, params=params), fresh.get(url, params=params)
        for response in (first, second):  # at once, while the one computation is held
            assert response.status_code == 202, response.text
            computing = response.json()["computing"]
            assert computing["state"] in ("queued", "computing")
            assert computing["view"]["since"] == since.isoformat()
            assert computing["view"]["until"] == until.isoformat()
            assert response.headers["Retry-After"] == str(computing["retry_after_seconds"])
            assert datetime.fromisoformat(computing["requested_at"]) <= datetime.now(UTC)
        assert first.json()["computing"]["started_by_this_request"] is True
        assert second.json()["computing"]["started_by_this_request"] is False
        # the computation's thread may not have reached `held` yet
        wait_until(lambda: calls, timeout=60, interval=0.05, message="the held computation to start")
        assert len(calls) == 1 and calls[0]["since"] == since and calls[0]["until"] == until
        release.set()
        context.views.wait_all(120)
        done = fresh.get(url, params=params)
        assert done.status_code == 200, done.text
        page = done.json()
        assert page["shown"]["source"] == "computed" and page["shown"]["took_seconds"] >= 0
        expected = cli_result(fresh, seeded, method="frequentist", since=since, until=until)
        assert same_numbers(without_computed_at(page["result"]), without_computed_at(expected))
        assert sum(v["units"] for v in page["result"]["metrics"][0]["variants"]) < seeded.data.units[KEY]
        again = fresh.get(url, params=params)  # re-opening the view: the kept result, no computation
        assert again.status_code == 200 and again.json()["result"] == page["result"] and len(calls) == 1
        export = fresh.get(f"/api/experiments/{KEY}/export/results.json", params=params)
        assert export.status_code == 200 and len(calls) == 1  # the export reused the same computation
        assert {(r["metric"], r["variation_id"], r["units"]) for r in parse("json", export.content)} == {
            (m["metric"], v["variation_id"], v["units"]) for m in expected["metrics"] for v in m["variants"]
        }


def test_an_export_of_a_new_window_waits_for_its_computation(seeded: Seeded) -> None:
    until = seeded.data.now - timedelta(minutes=5)
    params = {"until": until.isoformat(), "method": "bayesian"}
    with seeded.client() as fresh:
        export = fresh.get(f"/api/experiments/{KEY}/export/results.csv", params=params)
        assert export.status_code == 200, export.text
        expected = cli_result(fresh, seeded, method="bayesian", until=until)
        rows = parse("csv", export.content)
        assert {(r["metric"], int(r["variation_id"]), int(r["units"])) for r in rows} == {
            (m["metric"], v["variation_id"], v["units"]) for m in expected["metrics"] for v in m["variants"]
        }
        page = fresh.get(f"/api/experiments/{KEY}/results", params=params)  # the page reuses it
        assert page.status_code == 200 and page.json()["shown"]["source"] == "computed"


def test_a_failed_window_shows_its_error_and_is_not_recomputed_at_once(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xpcore.errors import TransientError

    params = {"until": (seeded.data.now - timedelta(minutes=7)).isoformat()}
    url = f"/api/experiments/{KEY}/results"
    with seeded.client(dashboard_view_results_retry_seconds=600) as fresh:
        context = fresh.app.state.dashboard  # type: ignore[attr-defined]
        calls = []
        # Held until the first answer is seen: a computation that fails at once could otherwise end
        # before the request that started it answers (then 503 at once, not 202).
        gate = threading.Event()

        def broken(spec: Any, plan: Any, **options: Any) -> Any:
            calls.append(1)
            gate.wait(30)
            raise TransientError("warehouse unreachable: connection refused")

        monkeypatch.setattr(context, "_compute", broken)
        assert fresh.get(url, params=params).status_code == 202
        gate.set()
        context.views.wait_all(60)
        for _ in range(3):  # a polling page: the same error each time, no new computation
            response = fresh.get(url, params=params)
            assert response.status_code == 503
            body = response.json()
            assert "warehouse unreachable: connection refused" in body["error"]
            assert body["computation"]["state"] == "failed"
            assert int(response.headers["Retry-After"]) > 500
        export = fresh.get(f"/api/experiments/{KEY}/export/results.csv", params=params)
        assert export.status_code == 503 and "warehouse unreachable" in export.json()["error"]
        assert calls == [1]
        fresh.post("/api/admin/cache/clear")  # forgetting the failure lets the next request try again
        gate.clear()
        assert fresh.get(url, params=params).status_code == 202
        gate.set()
        context.views.wait_all(60)
        assert calls == [1, 1]


def test_units_so_far_are_a_recent_copy_recounted_in_the_background(seeded: Seeded) -> None:
    from dashboards.sample_data import add_traffic

    health = f"/api/health?experiment={KEY}"
    with seeded.client(dashboard_units_max_age_seconds=0.2) as fresh:
        context = fresh.app.state.dashboard  # type: ignore[attr-defined]
        before = fresh.get(health).json()
        add_traffic(
            seeded.warehouse,
            experiment=KEY,
            variations=3,
            units=30,
            start=datetime.now(UTC) - timedelta(minutes=2),
            minutes=1,
            seed=992,
            prefix="copy",
        )
        seeded.data.units[KEY] += 30
        assert fresh.get(health).json()["units"] == before["units"]  # the copy, served at once
        clock = context.units.clock  # a second later: older than the maximum age, so the next request
        context.units.clock = lambda: clock() + 1.0  # starts a recount (a moved clock, not a sleep)
        fresh.get(health)
        context.units.wait(60)
        after = fresh.get(health).json()
        assert after["units"] == before["units"] + 30 == seeded.data.units[KEY]
        assert after["units_counted_at"] > before["units_counted_at"]
        listing = {e["key"]: e for e in fresh.get("/api/experiments").json()["experiments"]}
        assert listing[KEY]["units"] == after["units"]


# ---- the ingest counter (migration 0008) --------------------------------------------------------------


def test_ingest_counter_equals_a_recount_after_a_repair_and_a_backfill(seeded: Seeded) -> None:
    from pipelines.state import ALL_ROWS
    from xpcore.warehouse import load_query
    from xpcore.warehouse.migrations import discover_migrations

    warehouse = seeded.warehouse

    def counted() -> dict[str, int]:
        rows = warehouse.query_arrow(
            "SELECT kind, toUInt64(sum(records)) AS n FROM xp.ingest_counts_minute GROUP BY kind"
        ).to_pylist()
        return {r["kind"]: r["n"] for r in rows}

    recount = warehouse.query_arrow(
        "SELECT (SELECT count() FROM xp.events) AS events, (SELECT count() FROM xp.exposures) AS exposures"
    ).to_pylist()[0]
    assert counted() == recount and recount["events"] > 0

    # a worker killed between xp.events' part and its view's part: the counter misses that insert
    warehouse.command(
        "ALTER TABLE xp.ingest_counts_minute DELETE WHERE kind = 'events' AND minute = "
        "(SELECT max(minute) FROM xp.ingest_counts_minute WHERE kind = 'events') SETTINGS mutations_sync = 2"
    )
    assert counted().get("events", 0) < recount["events"]
    since = datetime.now(UTC) - timedelta(hours=2)  # the worker's dedup retention
    short = counted()
    # another worker's insert may be in flight (its views' parts not written yet): rows loaded at or after
    # the repair's horizon are left out, so the repair adds nothing for them rather than twice
    oldest = warehouse.query_arrow("SELECT min(ingested_at) AS t FROM xp.events").to_pylist()[0]["t"]
    warehouse.command(load_query("stream_repair_ingest_counts"), {"since": since, "until": oldest})
    assert counted() == short
    for _ in range(2):  # the start-up repair, then again: it adds nothing the second time
        warehouse.command(load_query("stream_repair_ingest_counts"), {"since": since, "until": ALL_ROWS})
        assert counted() == recount

    # rows stored before migration 0008: its last statement backfills them, once
    backfill = next(m for m in discover_migrations() if m.version == 8).statements[-1]
    assert backfill.lstrip().startswith("INSERT INTO xp.ingest_counts_minute")
    warehouse.command("TRUNCATE TABLE xp.ingest_counts_minute")
    for _ in range(2):
        warehouse.command(backfill)
        assert counted() == recount
