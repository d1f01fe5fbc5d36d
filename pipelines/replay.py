"""Replaying dead letters after a fix: their original bytes and key go back to their source topic.

The worker validates them again (a still-invalid record becomes a new dead letter, at its new offset);
ids already loaded are still deduplicated. Only dead letters read from the stream's own topics
(``xp.exposures``, ``xp.events`` under the configured prefix) are replayed, and only whole originals: a
record over the size limit kept only its first bytes (``original_size > length(original)``) and is
counted as ``truncated``, never produced.

Each replayed dead letter gets a row in ``xp.dead_letter_replays`` (migration 0011) once the producer
confirmed its delivery; a later replay skips it (unless ``again``), so running the same replay twice
produces nothing the second time. A crash between delivery and that row means the next replay produces
it once more, which the stream's id dedup absorbs: never lost, never counted twice.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xpcore.config import StreamSettings
    from xpcore.warehouse.base import Warehouse

__all__ = ["ReplayReport", "replay_dead_letters", "select_replayable"]

logger = logging.getLogger(__name__)

_SELECT = """
SELECT d.dead_letter_id AS dead_letter_id, d.source_topic AS source_topic, d.reason AS reason,
       d.original_key AS original_key, d.original AS original,
       d.original_size > length(d.original) AS truncated
FROM xp.dead_letters AS d
WHERE d.source_topic IN {topics:Array(String)}
  AND (empty({reasons:Array(String)}) OR d.reason IN {reasons:Array(String)})
  AND d.received_at >= {since:DateTime64(3, 'UTC')}
  AND ({again:Bool} OR d.dead_letter_id NOT IN (SELECT dead_letter_id FROM xp.dead_letter_replays))
ORDER BY d.source_topic, d.source_partition, d.source_offset, d.dead_letter_id
"""


@dataclass
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do)."""

    replay_id: str
    dry_run: bool
    by_topic: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    @property
    def replayed(self) -> int:
        return sum(self.by_topic.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "dry_run": self.dry_run,
            "replayed": 0 if self.dry_run else self.replayed,
            "would_replay": self.replayed if self.dry_run else 0,
            "by_topic": self.by_topic,
            "by_reason": self.by_reason,
            "truncated_skipped": self.truncated,
        }


def select_replayable(
    warehouse: Warehouse,
    topics: Sequence[str],
    *,
    reasons: Sequence[str],
    since: datetime,
    again: bool = False,
) -> list[dict[str, Any]]:
    """The dead letters a replay would take, oldest offset first, with their raw bytes."""
    import pyarrow as pa

    table = warehouse.query_arrow(
        _SELECT, {"topics": list(topics), "reasons": list(reasons), "since": since, "again": again}
    )
    schema = pa.schema(
        [
            pa.field("dead_letter_id", pa.string()),
            pa.field("source_topic", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("original_key", pa.binary()),
            pa.field("original", pa.binary()),
            pa.field("truncated", pa.bool_()),
        ]
    )
    rows: list[dict[str, Any]] = table.cast(schema).to_pylist()
    return rows


def replay_dead_letters(
    settings: StreamSettings,
    *,
    reasons: Sequence[str],
    since: datetime,
    source_topics: Sequence[str] = (),
    dry_run: bool = False,
    again: bool = False,
    delivery_timeout: float = 60.0,
) -> ReplayReport:
    """Produce the originals of matching dead letters to their source topics and mark them replayed.

    ``source_topics``: logical names (``xp.exposures``, ``xp.events``) to limit the replay to; empty:
    both. ``again``: also those replayed before (after a second fix, say)."""
    from xpcore.errors import TransientError, ValidationError
    from xpcore.kafka import EVENTS, EXPOSURES
    from xpcore.kafka.clients import make_producer
    from xpcore.warehouse import open_warehouse

    allowed = (EXPOSURES, EVENTS)
    unknown = [t for t in source_topics if t not in allowed]
    if unknown:
        raise ValidationError(f"--source-topic {unknown[0]!r}: choose from {', '.join(allowed)}")
    topics = [settings.topic(t) for t in (source_topics or allowed)]
    report = ReplayReport(replay_id=uuid.uuid4().hex, dry_run=dry_run)
    warehouse = open_warehouse(settings)
    try:
        rows = select_replayable(warehouse, topics, reasons=reasons, since=since, again=again)
        whole = [row for row in rows if not row["truncated"]]
        report.truncated = len(rows) - len(whole)
        report.by_topic = dict(Counter(row["source_topic"] for row in whole))
        report.by_reason = dict(Counter(row["reason"] for row in whole))
        if dry_run or not whole:
            return report
        producer = make_producer(settings, role="loadgen")
        failed: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failed.append(str(error))

        for row in whole:
            producer.produce(
                row["source_topic"], key=row["original_key"], value=row["original"], on_delivery=delivered
            )
            producer.poll(0)
        if producer.flush(delivery_timeout) > 0 or failed:
            detail = failed[0] if failed else f"not delivered within {delivery_timeout:.0f}s"
            raise TransientError(
                f"replay {report.replay_id}: not every record was delivered ({detail}); nothing was marked "
                "replayed: run it again (records already loaded are deduplicated)"
            )
        _mark_replayed(warehouse, whole, report.replay_id)
    finally:
        warehouse.close()
    logger.info("replayed dead letters %s (replay %s)", report.by_topic, report.replay_id)
    return report


def _mark_replayed(warehouse: Warehouse, rows: Sequence[dict[str, Any]], replay_id: str) -> None:
    import pyarrow as pa

    now = datetime.now(UTC)
    table = pa.table(
        {
            "dead_letter_id": pa.array([row["dead_letter_id"] for row in rows], pa.string()),
            "replay_id": pa.array([replay_id] * len(rows), pa.string()),
            "source_topic": pa.array([row["source_topic"] for row in rows], pa.string()),
            "reason": pa.array([row["reason"] for row in rows], pa.string()),
            "outcome": pa.array(["produced"] * len(rows), pa.string()),
            "replayed_at": pa.array([now] * len(rows), pa.timestamp("ms", tz="UTC")),
        }
    )
    warehouse.insert_arrow("xp.dead_letter_replays", table)
