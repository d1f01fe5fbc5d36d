"""The data lake end to end: chDB rows over several days → Parquet (local directory and a real
S3-compatible server) → read back with pyarrow and reconciled with ClickHouse, counts and contents."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from jobs.lake import run_lake
from jobs.lake.plan import LAKE_TABLES, MANIFEST_NAME, LakeLocation, Manifest
from jobs.lake.store import export_schema, write_partition
from xpcore.config import LakeSettings, WarehouseSettings
from xpcore.errors import TransientError
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

DAYS = ["2024-05-17", "2024-05-18", "2024-05-19"]

SEED_SQL = [
    # 2,100 exposures, one every 123 s from 2024-05-17 00:00 (three days), two experiments (one whose key
    # needs escaping in a path), a few duplicates re-inserted (FINAL collapses them).
    """
    INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
        variation_key, feature_key, bucket, overridden, source, attributes, user_agent, exposed_at,
        sent_at, schema_version)
    SELECT concat('x', toString(number)), concat('u', toString(number % 97)), 'id',
        if(number % 3 = 0, 'search/v2 beta', 'checkout'), number % 2, toString(number % 2),
        if(number % 5 = 0, NULL, 'feat'), number / 2100, number % 50 = 0, 'loadgen',
        map('country', if(number % 2 = 0, 'NL', 'DE')), NULL,
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 123001),
        NULL, 1
    FROM numbers(2100)
    """,
    """
    INSERT INTO xp.events (event_id, unit_id, event_name, value, properties, occurred_at, sent_at,
        schema_version)
    SELECT concat('ev', toString(number)), concat('u', toString(number % 97)),
        if(number % 4 = 0, 'purchase', 'pageview'), if(number % 4 = 0, number * 1.5, NULL),
        map('page', toString(number % 7)),
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 150007),
        toDateTime64('2024-05-17 00:00:01', 3, 'UTC') + toIntervalMillisecond(number * 150007), 1
    FROM numbers(1500)
    """,
    """
    INSERT INTO xp.attributed_events (event_id, unit_id, experiment_key, variation_id, event_name,
        value, occurred_at, first_exposed_at)
    SELECT concat('ev', toString(number)), concat('u', toString(number % 97)), 'checkout', number % 2,
        'purchase', number * 1.5,
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 700001),
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC')
    FROM numbers(300)
    """,
    # Dead letters keep raw bytes, not UTF-8: 0xFF, NUL and the row number.
    """
    INSERT INTO xp.dead_letters (dead_letter_id, reason, detail, record_kind, source_topic,
        source_partition, source_offset, original_key, original, received_at, schema_version)
    SELECT concat('d', toString(number)), 'invalid_utf8', 'not UTF-8', 'exposure', 'xp.exposures',
        toInt32(number % 4), toInt64(number), if(number % 2 = 0, NULL, unhex('FE')),
        concat(unhex('FF00'), toString(number)),
        toDateTime64('2024-05-18 12:00:00', 3, 'UTC') + toIntervalSecond(number * 1000), 1
    FROM numbers(60)
    """,
    # Re-sent exposures (same ids and times): the raw table holds them twice until a merge, the lake once.
    """
    INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id,
        variation_key, overridden, source, attributes, exposed_at, schema_version)
    SELECT concat('x', toString(number)), concat('u', toString(number % 97)), 'id',
        if(number % 3 = 0, 'search/v2 beta', 'checkout'), number % 2, toString(number % 2),
        number % 50 = 0, 'loadgen', map('country', if(number % 2 = 0, 'NL', 'DE')),
        toDateTime64('2024-05-17 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 123001), 1
    FROM numbers(10)
    """,
]


def seed(warehouse: Warehouse) -> None:
    for sql in SEED_SQL:
        warehouse.command(sql)


def lake_settings(warehouse_settings: WarehouseSettings, **overrides: Any) -> LakeSettings:
    values: dict[str, Any] = {
        "home": warehouse_settings.home,
        "clickhouse_url": None,
        "store_wait_seconds": 0,
        "lake_batch_rows": 100,  # many chunks per day: exercises the streaming path
        "lake_max_rows_per_file": 1000,
    }
    return LakeSettings(**(values | overrides))


def warehouse_rows(warehouse: Warehouse, name: str) -> list[dict[str, Any]]:
    """Every row of a table as the lake should hold it (FINAL where the lake reads FINAL), sorted."""
    spec = LAKE_TABLES[name]
    table = warehouse.query_arrow(f"SELECT * FROM {spec.source}{' FINAL' if spec.final else ''}")
    table = table.cast(export_schema(table.schema, spec))
    return sorted(table.to_pylist(), key=lambda r: sorted((k, repr(v)) for k, v in r.items()))


def warehouse_counts(warehouse: Warehouse, name: str) -> dict[str, int]:
    spec = LAKE_TABLES[name]
    result = warehouse.query_arrow(
        f"SELECT toString(toDate({spec.time_column})) AS day, count() AS n "
        f"FROM {spec.source}{' FINAL' if spec.final else ''} GROUP BY day"
    )
    return dict(zip(result["day"].to_pylist(), result["n"].to_pylist(), strict=True))


def lake_table(fs: pafs.FileSystem, root: str, name: str) -> pa.Table:
    return ds.dataset(f"{root}/{name}", filesystem=fs, format="parquet", partitioning="hive").to_table()


def lake_rows(table: pa.Table, warehouse_columns: list[str]) -> list[dict[str, Any]]:
    rows = table.select(warehouse_columns).to_pylist()
    return sorted(rows, key=lambda r: sorted((k, repr(v)) for k, v in r.items()))


def lake_counts(table: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for day in table["date"].to_pylist():
        counts[str(day)] = counts.get(str(day), 0) + 1
    return counts


def reconcile(warehouse: Warehouse, fs: pafs.FileSystem, root: str) -> dict[str, dict[str, int]]:
    """Counts per table and date equal ClickHouse's, and every row equals ClickHouse's row."""
    found = {}
    for name in LAKE_TABLES:
        table = lake_table(fs, root, name)
        expected_rows = warehouse_rows(warehouse, name)
        columns = list(expected_rows[0])
        assert lake_counts(table) == warehouse_counts(warehouse, name), name
        assert lake_rows(table, columns) == expected_rows, name
        found[name] = lake_counts(table)
    return found


def manifests(fs: pafs.FileSystem, root: str) -> dict[str, Manifest]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    found = {}
    for info in infos:
        if info.base_name == MANIFEST_NAME:
            with fs.open_input_stream(info.path) as stream:
                found[info.path[len(root) + 1 : -len(MANIFEST_NAME) - 1]] = Manifest.from_json(stream.read())
    return found


def data_files(fs: pafs.FileSystem, root: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File)


def test_local_lake_reconciles_with_clickhouse_and_reruns_without_doubles(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings
) -> None:
    seed(warehouse)
    settings = lake_settings(warehouse_settings)
    fs, root = pafs.LocalFileSystem(), str(warehouse_settings.home / "lake")
    # The raw table holds the 10 re-sent exposures twice; the lake holds one row per exposure.
    assert warehouse.query_arrow("SELECT count() AS n FROM xp.exposures")["n"][0].as_py() == 2110

    report = run_lake(settings, since=None, until=None, warehouse=warehouse)

    counts = reconcile(warehouse, fs, root)
    assert sorted(counts["exposures"]) == DAYS
    assert sum(counts["exposures"].values()) == 2100
    assert report.as_dict()["tables"] == {
        "exposures": {"rows": 2100, "files": 6, "partitions": 3},  # 3 days x 2 experiments
        "events": {"rows": 1500, "files": 3, "partitions": 3},
        "attributed_events": {"rows": 300, "files": 3, "partitions": 3},
        "dead_letters": {"rows": 60, "files": 2, "partitions": 2},  # the 18th and 19th
    }
    # Raw bytes survive: 0xFF NUL + the number, as binary.
    dead = lake_table(fs, root, "dead_letters")
    assert dead.schema.field("original").type == pa.binary()
    assert sorted(dead["original"].to_pylist())[0] == b"\xff\x000"
    assert set(lake_table(fs, root, "exposures")["experiment_key"].to_pylist()) == {
        "checkout",
        "search/v2 beta",
    }
    first_files = data_files(fs, root)
    first_manifests = manifests(fs, root)
    assert {m.run_id for m in first_manifests.values()} == {report.run_id}
    assert sum(m.rows for m in first_manifests.values()) == report.rows == 3960

    rerun = run_lake(settings, since=None, until=None, warehouse=warehouse)

    assert rerun.as_dict()["tables"] == report.as_dict()["tables"]
    reconcile(warehouse, fs, root)
    second_files = data_files(fs, root)
    assert len(second_files) == len(first_files)
    assert all(rerun.run_id in f for f in second_files if f.endswith(".parquet"))
    assert not [f for f in second_files if "/." in f or f.startswith(".")]  # no staging/trash left


def test_since_until_replace_only_those_dates(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings
) -> None:
    seed(warehouse)
    settings = lake_settings(warehouse_settings, lake_tables=["exposures", "events"])
    fs, root = pafs.LocalFileSystem(), str(warehouse_settings.home / "lake")
    first = run_lake(settings, since=None, until=None, warehouse=warehouse)
    # More events arrive for the 18th; only that day is re-exported (a naive datetime is UTC).
    warehouse.command(
        "INSERT INTO xp.events (event_id, unit_id, event_name, value, properties, occurred_at, "
        "schema_version) SELECT concat('late', toString(number)), 'u1', 'pageview', NULL, map(), "
        "toDateTime64('2024-05-18 06:00:00', 3, 'UTC') + toIntervalSecond(number), 1 FROM numbers(25)"
    )

    second = run_lake(
        settings, since=dt.datetime(2024, 5, 18, 9, 30), until=dt.datetime(2024, 5, 19), warehouse=warehouse
    )

    assert {(p.table, p.day.isoformat()) for p in second.partitions} == {
        ("exposures", "2024-05-18"),
        ("events", "2024-05-18"),
    }
    runs = {path: m.run_id for path, m in manifests(fs, root).items()}
    assert runs["events/date=2024-05-18"] == second.run_id
    assert runs["events/date=2024-05-17"] == runs["events/date=2024-05-19"] == first.run_id
    events = lake_table(fs, root, "events")
    assert lake_counts(events) == warehouse_counts(warehouse, "events")
    assert events.num_rows == 1525


def test_run_lake_opens_and_closes_the_configured_store(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings
) -> None:
    seed(warehouse)
    warehouse.close()  # chDB: one owner at a time; run_lake opens the store itself
    settings = lake_settings(warehouse_settings, lake_tables=["dead_letters"], lake_batch_rows=500_000)

    report = run_lake(settings, since=None, until=None)

    assert report.as_dict()["tables"] == {"dead_letters": {"rows": 60, "files": 2, "partitions": 2}}
    reopened = open_warehouse(warehouse_settings)  # the lake released the store
    reopened.close()


def test_a_storage_failure_is_a_transient_error(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings
) -> None:
    seed(warehouse)
    blocker = warehouse_settings.home / "not-a-directory"
    blocker.write_text("a file where the lake should be")
    settings = lake_settings(warehouse_settings, lake_url=str(blocker), lake_tables=["events"])

    with pytest.raises(TransientError, match="events/date=2024-05-17"):
        run_lake(settings, since=None, until=None, warehouse=warehouse)


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


def test_s3_lake_end_to_end(
    warehouse: Warehouse, warehouse_settings: WarehouseSettings, s3_endpoint: str
) -> None:
    seed(warehouse)
    credentials = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}
    host = s3_endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True, **credentials)
    fs.create_dir("lake-bucket")
    settings = lake_settings(
        warehouse_settings,
        lake_url="s3://lake-bucket/xp/lake",
        lake_s3_endpoint_url=s3_endpoint,
        lake_s3_region="us-east-1",
        lake_s3_access_key_id="testing",
        lake_s3_secret_access_key="testing",
    )
    root = "lake-bucket/xp/lake"

    report = run_lake(settings, since=None, until=None, warehouse=warehouse)

    assert report.url == "s3://lake-bucket/xp/lake"
    counts = reconcile(warehouse, fs, root)
    assert sum(counts["exposures"].values()) == 2100
    assert report.rows == 3960
    # Re-run: new files replace old ones, no doubles, no stale objects, one manifest per partition.
    rerun = run_lake(settings, since=None, until=None, warehouse=warehouse)
    reconcile(warehouse, fs, root)
    objects = data_files(fs, root)
    parquet = [o for o in objects if o.endswith(".parquet")]
    assert len(parquet) == rerun.files == report.files
    assert all(rerun.run_id in o for o in parquet)
    listed = {f"{path}/{f.path}" for path, m in manifests(fs, root).items() for f in m.files}
    assert listed == set(parquet)
    assert len(objects) - len(parquet) == len(rerun.partitions)  # the manifests

    # A run that fails midway (the warehouse goes away) leaves the partition and its manifest as they were.
    def broken() -> Iterator[pa.Table]:
        yield warehouse.query_arrow("SELECT * FROM xp.events FINAL")
        raise TransientError("warehouse went away")

    spec = LAKE_TABLES["events"]
    schema = export_schema(warehouse.query_arrow("SELECT * FROM xp.events LIMIT 1").schema, spec)
    location = LakeLocation("s3", root)
    with pytest.raises(TransientError):
        write_partition(
            fs,
            location,
            spec,
            dt.date(2024, 5, 17),
            broken(),
            schema,
            run_id="broken",
            max_rows_per_file=1000,
            compression="zstd",
            now=dt.datetime.now(dt.UTC),
        )
    assert data_files(fs, root) == objects
    reconcile(warehouse, fs, root)
