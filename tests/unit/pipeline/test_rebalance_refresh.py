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
