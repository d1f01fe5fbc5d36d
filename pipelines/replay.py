"""Replaying dead letters after a fix: their original bytes go back to their source topic.

The worker validates them again (a still-invalid record becomes a new dead letter, at its new offset);
ids already loaded are still deduplicated. Only dead letters read from the stream's own topics
(``xp.exposures``, ``xp.events`` under the configured prefix) are replayed, and only whole originals: a
record over the size limit kept only its first bytes (``original_size > length(original)``).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xpcore.config import StreamSettings

__all__ = ["replay_dead_letters"]

logger = logging.getLogger(__name__)

_SELECT = """
SELECT source_topic, original_key, original
FROM xp.dead_letters
WHERE source_topic IN {topics:Array(String)}
  AND (empty({reasons:Array(String)}) OR reason IN {reasons:Array(String)})
  AND received_at >= {since:DateTime64(3, 'UTC')}
  AND original_size = length(original)
ORDER BY source_topic, source_partition, source_offset
"""


def replay_dead_letters(
    settings: StreamSettings, *, reasons: list[str], since: datetime, dry_run: bool = False
) -> dict[str, int]:
    """Produce the originals of matching dead letters to their source topics; returns counts per topic."""
    import pyarrow as pa

    from xpcore.kafka import EVENTS, EXPOSURES
    from xpcore.kafka.clients import make_producer
    from xpcore.warehouse import open_warehouse

    topics = [settings.topic(EXPOSURES), settings.topic(EVENTS)]
    warehouse = open_warehouse(settings)
    try:
        table = warehouse.query_arrow(_SELECT, {"topics": topics, "reasons": reasons, "since": since})
    finally:
        warehouse.close()
    table = table.cast(
        pa.schema(
            [
                pa.field("source_topic", pa.string()),
                pa.field("original_key", pa.binary()),
                pa.field("original", pa.binary()),
            ]
        )
    )
    counts: Counter[str] = Counter()
    producer = None if dry_run else make_producer(settings, role="loadgen")
    for row in table.to_pylist():
        counts[row["source_topic"]] += 1
        if producer is not None:
            producer.produce(row["source_topic"], key=row["original_key"], value=row["original"])
            producer.poll(0)
    if producer is not None and producer.flush(60) > 0:
        from xpcore.errors import TransientError

        raise TransientError("not every replayed record was delivered within 60 s")
    logger.info("replayed dead letters %s", dict(counts))
    return dict(counts)
