"""After a rebalance a worker keeps holding only the events of units on the partitions it owns
(decision 0094); the warehouse is read only for the partitions it took."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.attribution import AttributionState
from pipelines.rebalance_refresh import partition_of_unit, refresh_after_rebalance
from pipelines.stream_report import StreamReport
from tests.unit.pipeline.helpers import event, minutes

PARTITIONS = 4


class _NoWarehouse:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the warehouse was used ({name}) with nothing taken")


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> Any:
    import xpcore.kafka.group_offsets as group_offsets

    monkeypatch.setattr(group_offsets, "topic_partition_count", lambda *_, **__: PARTITIONS)
    attribution = AttributionState(default_window=timedelta(hours=1), hold=timedelta(hours=1))
    return SimpleNamespace(
        settings=None,
        topics=SimpleNamespace(events="xp.events"),
        processor=SimpleNamespace(attribution=attribution),
        warehouse=_NoWarehouse(),
    )


def test_held_events_of_partitions_no_longer_owned_are_dropped_and_nothing_is_read(parts: Any) -> None:
    units = [f"unit-{i}" for i in range(40)]
    parts.processor.attribution.attribute_events(
        [event(f"e-{unit}", unit, at=minutes(0)) for unit in units], now=minutes(1)
    )
    owned = {0, 2}
    counts = refresh_after_rebalance(parts, StreamReport(), taken=set(), owned=owned)
    kept = [unit for unit in units if partition_of_unit(unit, PARTITIONS) in owned]
    assert 0 < len(kept) < len(units)
    assert counts == {"dropped_held": len(units) - len(kept)}
    assert parts.processor.attribution.held_count == len(kept)
    assert parts.processor.attribution.held_units() == sorted(kept)


def test_without_owned_partitions_nothing_is_dropped(parts: Any) -> None:
    parts.processor.attribution.attribute_events([event("e", "unit-1", at=minutes(0))], now=minutes(1))
    assert refresh_after_rebalance(parts, StreamReport(), taken=set()) == {}
    assert parts.processor.attribution.held_count == 1


class _Metadata:
    """What ``list_topics`` answers: the topic with its partitions (or without, or with an error)."""

    def __init__(self, topics: dict[str, Any]) -> None:
        self.topics = topics


class _WorkerConsumer:
    def __init__(self, answer: _Metadata) -> None:
        self.answer, self.asked = answer, []

    def list_topics(self, topic: str, timeout: float) -> _Metadata:
        self.asked.append(topic)
        return self.answer


def test_the_workers_own_consumer_is_asked_for_the_partition_count(parts: Any, monkeypatch: Any) -> None:
    import xpcore.kafka.group_offsets as group_offsets

    def refused(*_: Any, **__: Any) -> int:
        raise AssertionError("a new client was made though the worker's consumer was given")

    monkeypatch.setattr(group_offsets, "topic_partition_count", refused)
    units = [f"unit-{i}" for i in range(40)]
    parts.processor.attribution.attribute_events(
        [event(f"e-{unit}", unit, at=minutes(0)) for unit in units], now=minutes(1)
    )
    described = SimpleNamespace(error=None, partitions={n: None for n in range(8)})
    consumer = _WorkerConsumer(_Metadata({"xp.events": described}))
    counts = refresh_after_rebalance(parts, StreamReport(), taken=set(), owned={1}, consumer=consumer)
    kept = [unit for unit in units if partition_of_unit(unit, 8) == 1]  # 8 partitions, as answered
    assert consumer.asked == ["xp.events"]
    assert counts == {"dropped_held": len(units) - len(kept)}
    assert parts.processor.attribution.held_units() == sorted(kept)


@pytest.mark.parametrize(
    "topics",
    [{}, {"xp.events": SimpleNamespace(error="UNKNOWN_TOPIC", partitions={})}],
)
def test_a_topic_the_broker_does_not_describe_is_a_transient_error(topics: dict[str, Any]) -> None:
    from xpcore.errors import TransientError
    from xpcore.kafka.group_offsets import partition_count

    with pytest.raises(TransientError, match=r"xp\.events not described"):
        partition_count(_WorkerConsumer(_Metadata(topics)), "xp.events", timeout=1)
