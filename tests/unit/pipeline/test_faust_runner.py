"""The Faust runner's pure parts: records out of Faust events, and the unit → partition mapping."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.faust_runner import partition_of_unit, raw_record
from pipelines.kernel import RawRecord


def _event(timestamp: float | None) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="xp.events", partition=3, offset=41, key=b"unit-1", value=b"{}", timestamp=timestamp
    )
    return SimpleNamespace(message=message)


def test_a_faust_event_becomes_the_record_the_kafka_runner_builds() -> None:
    # Faust gives the Kafka timestamp in seconds (ms / 1000.0); the kernel wants the integer ms back.
    record = raw_record(_event(1_764_900_000_123 / 1000.0))
    assert record == RawRecord("xp.events", 3, 41, b"unit-1", b"{}", 1_764_900_000_123)
    assert isinstance(record, RawRecord)


@pytest.mark.parametrize("timestamp", [None, -0.001])
def test_no_broker_timestamp_is_none(timestamp: float | None) -> None:
    assert raw_record(_event(timestamp)).timestamp_ms is None


def test_partition_of_unit_is_the_producers_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for partitions in (1, 4, 12):
        everything = list(range(partitions))
        for unit in ("unit-1", "u-ü-2", "", "x" * 300):
            assert partition_of_unit(unit, partitions) == partitioner(unit.encode(), everything, everything)
