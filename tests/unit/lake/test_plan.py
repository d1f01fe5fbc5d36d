"""The pure planning of the lake: date ranges, chunk plans, paths, manifests, URLs (jobs/lake/plan.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.lake.plan import (
    LAKE_TABLES,
    MANIFEST_NAME,
    DatePlan,
    LakeLocation,
    Manifest,
    ManifestFile,
    basename_template,
    chunk_queries_cover_day,
    day_bounds,
    parse_lake_url,
    partition_dir,
    plan_dates,
    stale_files,
    table_names,
    to_utc,
)
from xpcore.errors import ConfigError, ValidationError

UTC = dt.UTC


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=UTC)


class TestDayBounds:
    def test_open_range_is_everything(self) -> None:
        assert day_bounds(None, None) == (None, None)

    def test_partial_days_widen_to_whole_days(self) -> None:
        assert day_bounds(at(17, 12, 30), at(19, 0, 1)) == (at(17), at(20))

    def test_until_at_midnight_excludes_that_day(self) -> None:
        assert day_bounds(at(17), at(19)) == (at(17), at(19))

    def test_naive_is_utc_and_other_zones_are_converted(self) -> None:
        plus_two = dt.timezone(dt.timedelta(hours=2))
        # 01:00+02:00 on the 18th is 23:00 UTC on the 17th.
        assert day_bounds(dt.datetime(2024, 5, 18, 1, tzinfo=plus_two), None) == (at(17), None)
        assert day_bounds(dt.datetime(2024, 5, 18), None) == (at(18), None)

    def test_empty_range_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="empty date range"):
            day_bounds(at(18), at(18))
        with pytest.raises(ValidationError):
            day_bounds(at(18), at(17))

    def test_to_utc(self) -> None:
        assert to_utc(dt.datetime(2024, 5, 17, 3)).tzinfo is UTC


class TestPlanDates:
    def test_groups_minutes_by_date_and_tiles_each_day(self) -> None:
        plans = plan_dates([(at(17, 10), 3), (at(18, 23, 59), 2), (at(17, 11), 4)], batch_rows=100)
        assert [(p.day, p.rows) for p in plans] == [(dt.date(2024, 5, 17), 7), (dt.date(2024, 5, 18), 2)]
        assert [(c.start, c.end, c.rows) for c in plans[0].chunks] == [(at(17), at(18), 7)]
        assert all(chunk_queries_cover_day(p) for p in plans)

    def test_splits_a_day_into_chunks_of_at_most_batch_rows(self) -> None:
        counts = [(at(17, 0, m), 4) for m in range(10)]  # 40 rows, 4 per minute
        (plan,) = plan_dates(counts, batch_rows=10)
        assert [c.rows for c in plan.chunks] == [8, 8, 8, 8, 8]
        assert plan.chunks[1].start == at(17, 0, 2)
        assert plan.chunks[-1].end == at(18)
        assert chunk_queries_cover_day(plan)

    def test_a_minute_larger_than_a_batch_is_one_chunk(self) -> None:
        (plan,) = plan_dates([(at(17, 1), 50), (at(17, 2), 1)], batch_rows=10)
        assert [c.rows for c in plan.chunks] == [50, 1]

    def test_no_rows_no_plan(self) -> None:
        assert plan_dates([(at(17, 1), 0)], batch_rows=10) == []
        assert plan_dates([], batch_rows=10) == []

    def test_batch_rows_must_be_positive(self) -> None:
        with pytest.raises(ValidationError):
            plan_dates([], batch_rows=0)

    @given(
        st.dictionaries(
            st.integers(min_value=0, max_value=4 * 1440 - 1),
            st.integers(min_value=1, max_value=50),
            max_size=60,
        ),
        st.integers(min_value=1, max_value=120),
    )
    def test_chunks_tile_days_and_keep_every_row(self, minutes: dict[int, int], batch_rows: int) -> None:
        counts = [(at(17) + dt.timedelta(minutes=m), n) for m, n in minutes.items()]
        plans = plan_dates(counts, batch_rows)
        assert sum(p.rows for p in plans) == sum(minutes.values())
        for plan in plans:
            assert chunk_queries_cover_day(plan)
            assert sum(c.rows for c in plan.chunks) == plan.rows
            # A chunk exceeds batch_rows only when it holds a single (large) minute.
            for chunk in plan.chunks:
                inside = [n for m, n in counts if chunk.start <= m < chunk.end]
                assert sum(inside) == chunk.rows
                assert chunk.rows <= batch_rows or len(inside) == 1

    def test_cover_check_detects_a_gap(self) -> None:
        (plan,) = plan_dates([(at(17, 1), 5), (at(17, 2), 5)], batch_rows=5)
        gap = DatePlan(day=plan.day, rows=plan.rows, chunks=plan.chunks[1:])
        assert not chunk_queries_cover_day(gap)


class TestPaths:
    def test_partition_dir(self) -> None:
        assert partition_dir("exposures", dt.date(2024, 5, 7)) == "exposures/date=2024-05-07"

    def test_basename_template_names_files_by_run(self) -> None:
        assert basename_template("20240517T000000Z-abc") == "part-20240517T000000Z-abc-{i}.parquet"
        with pytest.raises(ValidationError):
            basename_template("../x")

    def test_tables(self) -> None:
        assert [t.name for t in table_names(["dead_letters", "exposures"])] == ["exposures", "dead_letters"]
        assert LAKE_TABLES["exposures"].experiment_partition
        assert LAKE_TABLES["dead_letters"].binary_columns == ("original", "original_key")
        with pytest.raises(ConfigError, match="unknown lake table"):
            table_names(["registry"])


class TestManifest:
    manifest = Manifest(
        table="events",
        day=dt.date(2024, 5, 17),
        run_id="r1",
        written_at=dt.datetime(2024, 5, 20, 8, 0, tzinfo=UTC),
        files=(ManifestFile("part-r1-0.parquet", 10), ManifestFile("part-r1-1.parquet", 5)),
    )

    def test_round_trip(self) -> None:
        assert Manifest.from_json(self.manifest.to_json()) == self.manifest
        assert self.manifest.rows == 15
        assert self.manifest.as_dict()["written_at"] == "2024-05-20T08:00:00Z"

    @pytest.mark.parametrize("text", [b"", b"[]", b'{"format": 99}', b'{"format": 1, "table": "x"}'])
    def test_invalid_manifest_is_a_validation_error(self, text: bytes) -> None:
        with pytest.raises(ValidationError, match="invalid lake manifest"):
            Manifest.from_json(text)

    def test_stale_files_are_those_not_listed(self) -> None:
        listed = [
            "part-r0-0.parquet",
            "part-r1-0.parquet",
            MANIFEST_NAME,
            "experiment_key=a/part-r0-0.parquet",
            "part-r1-1.parquet",
        ]
        assert stale_files(listed, self.manifest) == [
            "experiment_key=a/part-r0-0.parquet",
            "part-r0-0.parquet",
        ]


class TestLakeUrl:
    def test_plain_paths(self) -> None:
        assert parse_lake_url("/data/lake/") == LakeLocation("file", "/data/lake")
        assert parse_lake_url("lake", cwd="/srv") == LakeLocation("file", "/srv/lake")
        assert parse_lake_url("file:///data/lake").root == "/data/lake"

    def test_s3(self) -> None:
        location = parse_lake_url("s3://bucket/some/prefix/")
        assert location == LakeLocation("s3", "bucket/some/prefix")
        assert location.url == "s3://bucket/some/prefix"
        assert location.join("events/date=2024-05-17", "_manifest.json") == (
            "bucket/some/prefix/events/date=2024-05-17/_manifest.json"
        )
        assert parse_lake_url("s3://bucket").root == "bucket"

    @pytest.mark.parametrize("url", ["", "s3:///prefix", "gs://bucket/x", "file://host/x", "s3://b/p?x=1"])
    def test_invalid(self, url: str) -> None:
        with pytest.raises(ConfigError):
            parse_lake_url(url)
