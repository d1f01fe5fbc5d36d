"""Keep ``xp.registry`` (the ClickHouse table) a complete audit history of the registry topic.

The topic is compacted: Kafka keeps only the latest record per key. Each time the stream worker sees
the registry change, it copies every record it has not stored yet (by ``record_id``) into the table, so
the who/when/what history survives compaction. Idempotent: a record already in the table is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas import RegistryRecord
    from xpcore.warehouse.base import Warehouse

__all__ = ["records_to_store", "store_registry_history"]

logger = logging.getLogger(__name__)


def records_to_store(records: Sequence[RegistryRecord], stored_ids: set[str]) -> list[RegistryRecord]:
    """The records not stored yet, each once, in topic order."""
    fresh: list[RegistryRecord] = []
    seen = set(stored_ids)
    for record in records:
        if record.record_id not in seen:
            seen.add(record.record_id)
            fresh.append(record)
    return fresh


def store_registry_history(warehouse: Warehouse, records: Sequence[RegistryRecord]) -> int:
    """Insert the records ``xp.registry`` lacks; returns how many were inserted."""
    from schemas import RegistryRecord
    from schemas.arrow import to_arrow

    if not records:
        return 0
    stored = warehouse.query_arrow(
        "SELECT DISTINCT record_id FROM xp.registry WHERE record_id IN {ids:Array(String)}",
        {"ids": [record.record_id for record in records]},
    )
    fresh = records_to_store(records, set(stored.column("record_id").to_pylist()))
    if fresh:
        token = "registry/" + fresh[0].record_id + "/" + fresh[-1].record_id + f"/{len(fresh)}"
        warehouse.insert_arrow("xp.registry", to_arrow(fresh, RegistryRecord), dedup_token=token)
        logger.info("stored %d registry changes in xp.registry", len(fresh))
    return len(fresh)
