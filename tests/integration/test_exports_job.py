"""`xp jobs run export` end to end on chDB: named exports to a folder and to a real S3-compatible server
(moto's server mode), files read back (openpyxl, pyarrow, csv, json) and compared with direct SQL; each
run recorded in xp.export_runs; runs never overwrite each other."""

from __future__ import annotations

import csv
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from jobs.exports import run_exports
from xpcore.config import ExportSettings, WarehouseSettings
from xpcore.errors import TerminalError
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

UNTIL = dt.datetime(2024, 5, 19, tzinfo=dt.UTC)

SEED_SQL = [
    # 700 exposures, one every 5 min from 2024-05-17 (a bit over two days), two experiments; the first
    # ten re-sent (duplicates until a merge); one unit id that a spreadsheet would take for a formula.
    """
    INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
        variation_key, feature_key, bucket, overridden, source, attributes, user_agent, exposed_at,
        sent_at, schema_version)
    SELECT concat('x', toString(number)),
        if(number = 3, '=HYPERLINK("http://evil")', concat('u', toString(number % 97))),
        'id', if(number % 3 = 0, 'search', 'checkout'), number % 2, toString(number % 2),
        NULL, number / 700, false, 'loadgen', map('country', if(number % 2 = 0, 'NL', 'DE')), NULL,
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalSecond(number * 300), NULL, 1
    FROM numbers(700)
    """,
    """
    INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
        variation_key, overridden, source, attributes, exposed_at, schema_version)
    SELECT concat('x', toString(number)),
        if(number = 3, '=HYPERLINK("http://evil")', concat('u', toString(number % 97))),
        'id', if(number % 3 = 0, 'search', 'checkout'), number % 2, toString(number % 2), false, 'loadgen',
        map('country', if(number % 2 = 0, 'NL', 'DE')),
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalSecond(number * 300), 1
    FROM numbers(10)
    """,
    """
    INSERT INTO xp.events (event_id, unit_id, event_name, value, properties, occurred_at, sent_at,
        schema_version)
    SELECT concat('ev', toString(number)), concat('u', toString(number % 97)),
        if(number % 4 = 0, 'purchase', 'pageview'), if(number % 4 = 0, number * 1.5, NULL),
        map('page', toString(number % 7)),
        toDateTime64('2024-05-18 00:00:00', 3, 'UTC') + toIntervalSecond(number * 90), NULL, 1
    FROM numbers(900)
    """,
    # Two stats snapshots; the latest has both experiments.
    """
    INSERT INTO xp.results (computed_at, experiment_key, metric, metric_type, role, method, variation_id,
        variation_key, variation_name, units, mean, estimate, ci_low, ci_high, p_value, chance_to_win,
        significant, error, srm_p_value, window_since, window_until, sum, sum_squares, denominator_sum,
        denominator_sum_squares, cross_sum)
    SELECT toDateTime64(if(number < 6, '2024-05-18 00:00:00', '2024-05-18 06:00:00'), 3, 'UTC'),
        if(number % 2 = 0, 'checkout', 'search'), concat('m', toString(number)), 'mean',
        'primary', 'frequentist', number % 2, toString(number % 2), 'v', 100 + number, 0.1 * number,
        if(number % 2 = 0, NULL, 0.01 * number), -0.1, 0.2, 0.04, 0.9, number % 2 = 1, '', 0.5,
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC'), toDateTime64('2024-05-18 00:00:00', 3, 'UTC'),
        1, 1, 1, 1, 1
    FROM numbers(14)
    """,
    """
    INSERT INTO xp.dq_results (run_id, run_at, check, experiment, table_name, success, severity, observed,
        threshold, detail)
    SELECT if(number < 3, 'old', 'new'), toDateTime64(if(number < 3, '2024-05-18 00:00:00',
        '2024-05-18 01:00:00'), 3, 'UTC'), concat('check_', toString(number)), NULL, 'xp.events',
        number % 2 = 0, 'error', toString(number), '1', 'ok'
    FROM numbers(8)
    """,
]

EXPORTS_YAML = """
exports:
  - {name: checkout-results, dataset: results, experiments: [checkout], format: xlsx}
  - {name: all-results, dataset: results, format: json}
  - {name: raw-exposures, dataset: exposures, window: 1d, format: parquet}
  - {name: exposures-csv, dataset: exposures, window: 1d, format: csv}
  - {name: events-sheet, dataset: events, window: 2d, format: xlsx}
  - {name: quality-latest, dataset: quality, format: csv}
"""


def seed(warehouse: Warehouse) -> None:
    for sql in SEED_SQL:
        warehouse.command(sql)


def settings_for(warehouse_settings: WarehouseSettings, tmp_path: Path, **overrides: Any) -> ExportSettings:
    spec = tmp_path / "exports.yaml"
    if not spec.exists():
        spec.write_text(EXPORTS_YAML)
    values: dict[str, Any] = {
        "home": warehouse_settings.home,
        "clickhouse_url": None,
        "store_wait_seconds": 0,
        "export_file": spec,
        "export_url": str(tmp_path / "out"),
        "export_batch_rows": 64,  # many pages per export: exercises the keyset walk
    }
    return ExportSettings(**(values | overrides))


def count(warehouse: Warehouse, sql: str) -> int:
    return int(warehouse.query_arrow(sql).column(0)[0].as_py())


def exposure_ids(warehouse: Warehouse, since: str, until: str) -> list[str]:
    sql = (
        "SELECT exposure_id FROM xp.exposures FINAL WHERE exposed_at >= toDateTime64({s:String}, 3, 'UTC') "
        "AND exposed_at < toDateTime64({u:String}, 3, 'UTC') ORDER BY experiment_key, unit_id, exposed_at, "
        "exposure_id"
    )
    return [str(v) for v in warehouse.query_arrow(sql, {"s": since, "u": until}).column(0).to_pylist()]


def only_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(files) == 1, files
    return files[0]


def test_exports_to_a_folder_match_the_warehouse(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    seed(warehouse)
    settings = settings_for(warehouse_settings, tmp_path)

    report = run_exports(settings, until=UNTIL, warehouse=warehouse)

    out = tmp_path / "out"
    assert [r.status for r in report.runs] == ["ok"] * 6
    by_name = {r.export_name: r for r in report.runs}

    # Parquet: the exposures of [2024-05-18, 2024-05-19), once each, in key order, as direct SQL says.
    parquet = only_file(out / "raw-exposures")
    assert parquet.name.startswith("raw-exposures_20240518T000000Z_20240519T000000Z_run")
    table = pq.read_table(parquet)
    expected = exposure_ids(warehouse, "2024-05-18 00:00:00", "2024-05-19 00:00:00")
    assert len(expected) == 288
    assert table.column("exposure_id").to_pylist() == expected
    assert by_name["raw-exposures"].rows == 288 == table.num_rows
    assert by_name["raw-exposures"].bytes == parquet.stat().st_size
    assert json.loads(table.column("attributes_json")[0].as_py())["country"] in ("NL", "DE")

    # CSV: same rows; the formula-like unit id is neutralised.
    with only_file(out / "exposures-csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["exposure_id"] for r in rows] == expected

    # The day before holds the duplicate and the formula text: one row each, the formula quoted.
    day_before = run_exports(
        settings_for(warehouse_settings, tmp_path, export_url=str(tmp_path / "before")),
        until=UNTIL - dt.timedelta(days=1),
        warehouse=warehouse,
    )
    assert {r.export_name: r.rows for r in day_before.runs}["exposures-csv"] == 288
    with only_file(tmp_path / "before" / "exposures-csv").open(newline="") as file:
        before = list(csv.DictReader(file))
    assert [r["exposure_id"] for r in before] == exposure_ids(
        warehouse, "2024-05-17 00:00:00", "2024-05-18 00:00:00"
    )
    assert '\'=HYPERLINK("http://evil")' in {r["unit_id"] for r in before}

    # XLSX of events over two days: every event, header formatted and frozen, numbers formatted.
    workbook = load_workbook(only_file(out / "events-sheet"))
    sheet = workbook["events-sheet"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["event_name", "unit_id", "occurred_at (UTC)", "event_id"]
    assert sheet.freeze_panes == "A2"
    assert all(c.font.bold for c in sheet[1])
    assert sheet.column_dimensions["B"].width >= len("unit_id")
    assert sheet.max_row - 1 == count(warehouse, "SELECT count() FROM xp.events FINAL") == 900
    value_column = header.index("value") + 1
    purchase = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == "purchase")
    assert purchase[value_column - 1].number_format == "0.0000"
    assert isinstance(purchase[2].value, dt.datetime)
    assert purchase[2].number_format == "yyyy-mm-dd hh:mm:ss"

    # Results: checkout's latest snapshot in XLSX; all experiments of the latest snapshot in JSON.
    results = load_workbook(only_file(out / "checkout-results"))["checkout-results"]
    latest_checkout = count(
        warehouse,
        "SELECT count() FROM xp.results FINAL WHERE experiment_key = 'checkout' AND computed_at = "
        "(SELECT max(computed_at) FROM xp.results WHERE experiment_key = 'checkout')",
    )
    assert results.max_row - 1 == latest_checkout == 4
    document = json.loads(only_file(out / "all-results").read_text())
    assert len(document) == 8
    assert {row["experiment_key"] for row in document} == {"checkout", "search"}
    assert {row["computed_at"] for row in document} == {"2024-05-18T06:00:00+00:00"}

    # Quality: the latest run's outcomes only.
    with only_file(out / "quality-latest").open(newline="") as file:
        quality = list(csv.DictReader(file))
    assert {r["run_id"] for r in quality} == {"new"} and len(quality) == 5

    # Each export of each run is a row of xp.export_runs.
    runs = warehouse.query_arrow(
        "SELECT export_name, status, rows, bytes, file FROM xp.export_runs ORDER BY started_at"
    ).to_pylist()
    assert len(runs) == 12
    recorded = {(r["export_name"], r["file"]): r for r in runs}
    for run in report.runs:
        row = recorded[(run.export_name, run.file)]
        assert (row["status"], row["rows"], row["bytes"]) == ("ok", run.rows, run.bytes)

    # Another run of the same window writes new files next to the old ones: nothing overwritten.
    run_exports(settings, until=UNTIL, warehouse=warehouse)
    assert len([p for p in (out / "raw-exposures").iterdir() if not p.name.startswith(".")]) == 2


def test_a_failing_export_is_recorded_and_the_others_still_run(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings, tmp_path: Path
) -> None:
    seed(warehouse)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    spec = tmp_path / "exports.yaml"
    spec.write_text(
        "exports:\n"
        f"  - {{name: broken, dataset: events, format: csv, destination: '{blocked}/sub'}}\n"
        "  - {name: fine, dataset: events, format: json, window: 2d}\n"
    )
    settings = settings_for(warehouse_settings, tmp_path, export_file=spec)

    with pytest.raises(TerminalError, match=r"1 of 2 export\(s\) failed: broken: writing"):
        run_exports(settings, until=UNTIL, warehouse=warehouse)

    rows = warehouse.query_arrow(
        "SELECT export_name, status, rows, error FROM xp.export_runs ORDER BY export_name"
    ).to_pylist()
    assert [(r["export_name"], r["status"]) for r in rows] == [("broken", "failed"), ("fine", "ok")]
    assert rows[0]["rows"] == 0 and "writing" in rows[0]["error"]
    assert rows[1]["rows"] == 900
    assert len(json.loads(only_file(tmp_path / "out" / "fine").read_text())) == 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto's server mode) on a free loopback port."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev dependency)")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_exports_to_s3_match_the_warehouse(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings, tmp_path: Path, s3_endpoint: str
) -> None:
    from openpyxl import load_workbook

    seed(warehouse)
    host = s3_endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(
        endpoint_override=host,
        scheme="http",
        allow_bucket_creation=True,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    fs.create_dir("export-bucket")
    settings = settings_for(
        warehouse_settings,
        tmp_path,
        export_url="s3://export-bucket/xp/exports",
        lake_s3_endpoint_url=s3_endpoint,
        lake_s3_region="us-east-1",
        lake_s3_access_key_id="testing",
        lake_s3_secret_access_key="testing",
    )

    report = run_exports(settings, until=UNTIL, warehouse=warehouse)

    assert [r.status for r in report.runs] == ["ok"] * 6
    listed = fs.get_file_info(pafs.FileSelector("export-bucket/xp/exports", recursive=True))
    objects = sorted(i.path for i in listed if i.type == pafs.FileType.File)
    assert len(objects) == 6
    parquet = next(o for o in objects if "/raw-exposures/" in o)
    table = pq.read_table(parquet, filesystem=fs)
    assert table.column("exposure_id").to_pylist() == exposure_ids(
        warehouse, "2024-05-18 00:00:00", "2024-05-19 00:00:00"
    )
    xlsx = next(o for o in objects if "/events-sheet/" in o)
    local = tmp_path / "events.xlsx"
    with fs.open_input_stream(xlsx) as source:
        local.write_bytes(source.read())
    assert load_workbook(local)["events-sheet"].max_row - 1 == 900
    sizes = {r.export_name: r.bytes for r in report.runs}
    assert fs.get_file_info(parquet).size == sizes["raw-exposures"]
    destinations = warehouse.query_arrow("SELECT DISTINCT destination FROM xp.export_runs").to_pylist()
    assert destinations == [{"destination": "s3://export-bucket/xp/exports"}]


def test_xp_up_schedules_the_export_and_its_run_writes_the_files(
    warehouse_settings: WarehouseSettings, tmp_path: Path
) -> None:
    """What the scheduler of `xp up` does at a fire time: the export's job callable, run by run_job,
    on `xp up`'s own settings object (the store is opened by the job, as in `xp up`)."""
    from xpcore.warehouse import open_warehouse
    from xpstream.scheduler.plan import SchedulePlan
    from xpstream.scheduler.runner import run_job
    from xpstream.up.runner import scheduled_jobs, schedules_from
    from xpstream.up.settings import UpSettings

    store = open_warehouse(warehouse_settings)
    try:
        seed(store)
        store.command(  # recent events: in the window of a run now (the seeded ones are from 2024)
            "INSERT INTO xp.events (event_id, unit_id, event_name, value, properties, occurred_at, sent_at, "
            "schema_version) SELECT concat('recent', toString(number)), concat('u', toString(number % 7)), "
            "'purchase', number, map(), now64(3) - toIntervalMinute(number * 20), NULL, 1 FROM numbers(60)"
        )
    finally:
        store.close()
    spec = tmp_path / "exports.yaml"
    spec.write_text("exports:\n  - {name: daily-events, dataset: events, format: parquet, window: 2d}\n")
    settings = UpSettings(
        home=warehouse_settings.home,
        clickhouse_url=None,
        store_wait_seconds=0,
        export_file=spec,
        export_url=str(tmp_path / "scheduled"),
    )
    schedules = [s for s in schedules_from(settings) if s.job == "export"]
    assert [(s.expression, s.setting) for s in schedules] == [("0 1 * * *", "XP_SCHEDULE_EXPORT")]
    plan = SchedulePlan(schedules, dt.datetime(2024, 5, 19, 0, 30, tzinfo=dt.UTC))
    assert plan.due(dt.datetime(2024, 5, 19, 0, 59, tzinfo=dt.UTC)) == []
    (dispatch,) = plan.due(dt.datetime(2024, 5, 19, 1, 0, tzinfo=dt.UTC))

    run = run_job("export", scheduled_jobs(settings)["export"], dispatch.scheduled_for)

    assert run.outcome == "ok", run.detail
    table = pq.read_table(only_file(tmp_path / "scheduled" / "daily-events"))
    store = open_warehouse(warehouse_settings)
    try:
        direct = store.query_arrow(
            "SELECT event_id FROM xp.events FINAL WHERE occurred_at >= now64(3) - INTERVAL 2 DAY "
            "ORDER BY event_name, unit_id, occurred_at, event_id"
        )
        recorded = store.query_arrow("SELECT export_name, status, rows FROM xp.export_runs").to_pylist()
    finally:
        store.close()
    assert table.column("event_id").to_pylist() == direct.column(0).to_pylist()
    assert table.num_rows == 60  # 20 hours of recent events; the 2024 ones are outside the window
    assert recorded == [{"export_name": "daily-events", "status": "ok", "rows": table.num_rows}]
