"""Partition writes on a local directory (jobs/lake/store.py) and the lake's SQL text (jobs/lake)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from pydantic import SecretStr

from jobs.lake import LakeReport, PartitionReport, chunk_sql, minute_counts_sql, new_run_id
from jobs.lake.plan import LAKE_TABLES, MANIFEST_NAME, LakeLocation, Manifest
from jobs.lake.store import (
    export_schema,
    open_lake_filesystem,
    read_manifest,
    remove_leftovers,
    write_partition,
)
from xpcore.config import LakeSettings
from xpcore.errors import ConfigError, TransientError
from xpcore.warehouse.sqltext import placeholders

DAY = dt.date(2024, 5, 17)
NOW = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)


def exposures(ids: list[str], experiments: list[str]) -> pa.Table:
    return pa.table(
        {
            "exposure_id": ids,
            "experiment_key": pa.array(experiments).dictionary_encode(),
            "exposed_at": pa.array(
                [dt.datetime(2024, 5, 17, 1, tzinfo=dt.UTC)] * len(ids), pa.timestamp("ms", "UTC")
            ),
        }
    )


def write(location: LakeLocation, tables: list[pa.Table], run_id: str, table: str = "exposures") -> Manifest:
    spec = LAKE_TABLES[table]
    schema = export_schema(tables[0].schema, spec)
    return write_partition(
        pafs.LocalFileSystem(),
        location,
        spec,
        DAY,
        iter(tables),
        schema,
        run_id=run_id,
        max_rows_per_file=1000,
        compression="zstd",
        now=NOW,
    )


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class TestExportSchema:
    def test_decodes_dictionaries_and_casts_raw_bytes(self) -> None:
        schema = pa.schema([("original", pa.string()), ("reason", pa.dictionary(pa.int32(), pa.string()))])
        out = export_schema(schema, LAKE_TABLES["dead_letters"])
        assert out.field("original").type == pa.binary()
        assert out.field("reason").type == pa.string()
        assert export_schema(schema, LAKE_TABLES["events"]).field("original").type == pa.string()


class TestWritePartition:
    def test_writes_experiment_folders_and_a_manifest(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        manifest = write(location, [exposures(["a", "b"], ["x", "y/z"]), exposures(["c"], ["x"])], "r1")
        assert manifest.rows == 3
        assert files_under(tmp_path / "exposures") == [
            f"date=2024-05-17/{MANIFEST_NAME}",
            "date=2024-05-17/experiment_key=x/part-r1-0.parquet",
            "date=2024-05-17/experiment_key=y%2Fz/part-r1-0.parquet",
        ]
        fs = pafs.LocalFileSystem()
        assert read_manifest(fs, location, "exposures", DAY) == manifest
        assert read_manifest(fs, location, "exposures", dt.date(2024, 5, 18)) is None
        table = ds.dataset(tmp_path / "exposures", partitioning="hive").to_table()
        assert sorted(
            zip(table["exposure_id"].to_pylist(), table["experiment_key"].to_pylist(), strict=True)
        ) == [
            ("a", "x"),
            ("b", "y/z"),
            ("c", "x"),
        ]

    def test_rewrite_replaces_never_doubles(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        write(location, [exposures(["a", "b"], ["x", "y"])], "r1")
        manifest = write(location, [exposures(["a"], ["x"])], "r2")
        assert manifest.run_id == "r2"
        assert files_under(tmp_path / "exposures") == [
            f"date=2024-05-17/{MANIFEST_NAME}",
            "date=2024-05-17/experiment_key=x/part-r2-0.parquet",
        ]
        assert ds.dataset(tmp_path / "exposures", partitioning="hive").count_rows() == 1

    def test_an_empty_partition_keeps_only_its_manifest(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        write(location, [exposures(["a"], ["x"])], "r1")
        manifest = write(location, [exposures([], [])], "r2")
        assert manifest.rows == 0 and manifest.files == ()
        assert files_under(tmp_path / "exposures") == [f"date=2024-05-17/{MANIFEST_NAME}"]

    def test_a_failure_midway_leaves_the_old_partition(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        write(location, [exposures(["a"], ["x"])], "r1")
        before = files_under(tmp_path)

        def broken() -> Iterator[pa.Table]:
            yield exposures([f"e{i}" for i in range(1500)], ["x"] * 1500)
            raise TransientError("warehouse went away")

        with pytest.raises(TransientError):
            write_partition(
                pafs.LocalFileSystem(),
                location,
                LAKE_TABLES["exposures"],
                DAY,
                broken(),
                export_schema(exposures(["a"], ["x"]).schema, LAKE_TABLES["exposures"]),
                run_id="r2",
                max_rows_per_file=1000,
                compression="zstd",
                now=NOW,
            )
        assert files_under(tmp_path) == before
        assert [p.name for p in (tmp_path / "exposures").iterdir()] == ["date=2024-05-17"]

    def test_large_partitions_split_into_files(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        ids = [f"e{i}" for i in range(2500)]
        manifest = write(location, [exposures(ids, ["x"] * 2500)], "r1")
        assert [f.rows for f in manifest.files] == [1000, 1000, 500]

    def test_leftovers_of_a_crashed_run_are_removed(self, tmp_path: Path) -> None:
        location = LakeLocation("file", str(tmp_path))
        (tmp_path / "events" / ".staging-date=2024-05-17-r0").mkdir(parents=True)
        (tmp_path / "events" / ".trash-date=2024-05-17-r0").mkdir()
        (tmp_path / "events" / ".staging-date=2024-05-18-r0").mkdir()
        remove_leftovers(pafs.LocalFileSystem(), location, "events", DAY)
        assert [p.name for p in (tmp_path / "events").iterdir()] == [".staging-date=2024-05-18-r0"]


class TestFileSystem:
    def test_local_by_default(self, tmp_path: Path) -> None:
        settings = LakeSettings(home=tmp_path)
        assert settings.lake_location == str(tmp_path / "lake")
        assert isinstance(open_lake_filesystem(LakeLocation("file", "/x"), settings), pafs.LocalFileSystem)

    def test_s3_needs_both_keys(self, tmp_path: Path) -> None:
        settings = LakeSettings(
            home=tmp_path, lake_s3_access_key_id=SecretStr("id"), lake_s3_region="us-east-1"
        )
        with pytest.raises(ConfigError, match="both"):
            open_lake_filesystem(LakeLocation("s3", "bucket"), settings)

    def test_s3_endpoint_must_be_a_url(self, tmp_path: Path) -> None:
        settings = LakeSettings(home=tmp_path, lake_s3_endpoint_url="localhost:9000")
        with pytest.raises(ConfigError, match="ENDPOINT"):
            open_lake_filesystem(LakeLocation("s3", "bucket"), settings)

    def test_secrets_are_not_echoed(self, tmp_path: Path) -> None:
        settings = LakeSettings(home=tmp_path, lake_s3_secret_access_key=SecretStr("hunter2"))
        assert "hunter2" not in repr(settings)


class TestSqlAndReport:
    def test_queries_bind_their_time_bounds(self) -> None:
        table = LAKE_TABLES["exposures"]
        start, end = dt.datetime(2024, 5, 17, tzinfo=dt.UTC), dt.datetime(2024, 5, 18, tzinfo=dt.UTC)
        assert placeholders(minute_counts_sql(table, start, end)) == {
            "start": "DateTime64(3, 'UTC')",
            "end": "DateTime64(3, 'UTC')",
        }
        assert placeholders(minute_counts_sql(table, None, None)) == {}
        assert "FROM xp.exposures FINAL" in minute_counts_sql(table, None, None)
        sql = chunk_sql(table)
        assert set(placeholders(sql)) == {"start", "end"}
        assert "ORDER BY experiment_key, exposed_at, exposure_id SETTINGS" in sql
        assert "FINAL" not in chunk_sql(LAKE_TABLES["dead_letters"])

    def test_report_totals_and_json(self) -> None:
        report = LakeReport(
            url="file:///l", run_id=new_run_id(NOW), since=dt.datetime(2024, 5, 17), until=None
        )
        report.add(PartitionReport("events", DAY, rows=5, files=1, path="events/date=2024-05-17"))
        report.add(PartitionReport("events", DAY + dt.timedelta(days=1), rows=2, files=1, path="x"))
        doc = report.as_dict()
        assert doc["tables"] == {"events": {"rows": 7, "files": 2, "partitions": 2}}
        assert (doc["rows"], doc["files"], doc["since"], doc["until"]) == (7, 2, "2024-05-17T00:00:00Z", None)
        assert doc["run_id"].startswith("20240520T000000Z-")
        assert doc["partitions"][0] == {
            "table": "events",
            "date": "2024-05-17",
            "rows": 5,
            "files": 1,
            "path": "events/date=2024-05-17",
        }
