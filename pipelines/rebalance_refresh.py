"""After a rebalance: each worker holds the events of its own units only, and what other workers loaded
for the partitions it took joins its state before any record of them is processed (decisions 0074, 0094).

The other worker's dedup ids, every first exposure, and the recent events of the units on the taken
partitions of the events topic come from the warehouse (:func:`pipelines.state.refresh_state`); held events
the first exposures now make attributable are attributed and loaded at once, as at start-up. Held events of
units on partitions this worker no longer owns are dropped: their new owner holds them from the warehouse
(two holders would attribute them twice; none would leave them unattributed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Set

    from pipelines.stream_report import StreamReport
    from pipelines.worker_setup import WorkerParts

__all__ = ["partition_of_unit", "refresh_after_rebalance"]


def partition_of_unit(unit_id: str, partitions: int) -> int:
    """The partition producers put a unit's records on (key = unit id, the Java/aiokafka murmur2
    partitioner every xp producer uses: docs/decisions/0001-kafka-version.md)."""
    from aiokafka.partitioner import murmur2

    return int((murmur2(unit_id.encode()) & 0x7FFFFFFF) % partitions)


def refresh_after_rebalance(
    parts: WorkerParts,
    report: StreamReport,
    taken: Set[int],
    owned: Set[int] | None = None,
    *,
    consumer: Any = None,
) -> dict[str, int]:
    """Refresh the state for the ``taken`` partitions of the events topic; with ``owned`` (every events
    partition this worker holds now), first drop the held events of the units on the others. Returns the
    counts (no warehouse read when nothing was taken).

    ``consumer``: the worker's confluent-kafka consumer, asked for the events topic's partition count (a
    new client otherwise: its connection and authentication were ~0.5 s of every start-up)."""
    from pipelines.processor import attributions_table
    from pipelines.state import refresh_state
    from xpcore.kafka.group_offsets import partition_count, topic_partition_count

    events = parts.topics.events
    if consumer is not None:
        partitions = partition_count(consumer, events, timeout=30)
    else:
        partitions = topic_partition_count(parts.settings, events, timeout=30, role="worker")
    counts: dict[str, int] = {}
    if owned is not None and partitions > 0:
        counts["dropped_held"] = parts.processor.attribution.drop_held(
            lambda unit_id: partition_of_unit(unit_id, partitions) in owned
        )
    if not taken:
        return counts

    def taken_over(unit_id: str) -> bool:
        return partitions > 0 and partition_of_unit(unit_id, partitions) in taken

    counts |= refresh_state(
        parts.processor, parts.warehouse, parts.settings, datetime.now(UTC), taken_over=taken_over
    )
    pending = parts.processor.attribution.attribute_held()
    if pending:
        parts.warehouse.insert_arrow("xp.attributed_events", attributions_table(pending))
        report.attributed += len(pending)
    counts["attributed"] = len(pending)
    return counts
