"""Realtime health helpers: the minute grid and series with zeros where no row; consumer lag per partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboards.catalog import live_srm, shared_metrics
from dashboards.health_page import minute_grid, series_by_minute
from dashboards.lag import LagReading, partition_lag

T0 = datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)


def test_minute_grid_covers_both_ends() -> None:
    grid = minute_grid(T0, T0 + timedelta(minutes=3))
    assert grid[0] == T0.replace(second=0) and len(grid) == 4


def test_series_fill_zeros_and_sum_groups() -> None:
    grid = minute_grid(T0, T0 + timedelta(minutes=4))
    rows = [
        {"minute": grid[1], "variation_id": 0, "n": 5},
        {"minute": grid[1], "variation_id": 1, "n": 2},
        {"minute": grid[3], "variation_id": 0, "n": 1},
        {"minute": grid[0] - timedelta(minutes=9), "variation_id": 0, "n": 100},  # outside: ignored
    ]
    series = series_by_minute(rows, grid, "variation_id", "n")
    assert series == {0: [0, 5, 0, 1, 0], 1: [0, 2, 0, 0, 0]}


def test_partition_lag() -> None:
    assert partition_lag(100, 0, 60) == 40
    assert partition_lag(100, 10, None) == 90  # nothing committed: everything retained is lag
    assert partition_lag(100, 10, -1001) == 90  # librdkafka's OFFSET_INVALID
    assert partition_lag(100, 0, 120) == 0


def test_unknown_lag_reads_as_unknown() -> None:
    document = LagReading(False, reason="Kafka unreachable").to_json()
    assert document["status"] == "unknown" and document["total"] is None


def test_live_srm() -> None:
    assert live_srm({0: 500, 1: 500}, (0.5, 0.5)) == 1.0
    p = live_srm({0: 600, 1: 400}, (0.5, 0.5))
    assert p is not None and p < 0.001
    assert live_srm({}, (1.0,)) is None


def test_shared_metrics_keep_first_order() -> None:
    documents = [
        {"metrics": [{"metric": "a"}, {"metric": "b"}, {"metric": "c"}]},
        {"metrics": [{"metric": "c"}, {"metric": "a"}]},
    ]
    assert shared_metrics(documents) == ["a", "c"]
    assert shared_metrics([]) == []


def test_the_ingest_tile_shows_a_burst_that_just_arrived() -> None:
    from dashboards.health_page import last_60_seconds

    now = datetime(2026, 12, 5, 7, 0, 15, tzinfo=UTC)  # 15 s into the minute
    assert last_60_seconds([0, 0, 25_000], now) == 25_000  # "the last full minute" said 0
    assert last_60_seconds([0, 600, 100], now) == 100 + 450  # 45 s of the previous minute still count
    assert last_60_seconds([600], now) == 600
    assert last_60_seconds([], now) == 0
    assert last_60_seconds([900, 60], now.replace(second=0)) == 60 + 900
