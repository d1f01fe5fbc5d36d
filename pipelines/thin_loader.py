"""The foundation's thin path: consume one topic of records and load it into the warehouse.

Kafka → decode (coded failures become rows of ``xp.dead_letters`` with the original bytes) → Arrow →
one insert per partition batch with a deterministic dedup token ``topic/partition/first-last`` →
commit offsets only after the insert.
A re-run after a crash between insert and commit re-sends the same batch with the same token, so the
warehouse keeps one copy. The full stream job (validation against the registry, dead letters, dedup
state, attribution) is issue #4; this is the smallest honest version of its load stage.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemas import DeadLetter, RecordCodec, make_dead_letter

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings
    from xpcore.warehouse.base import Warehouse

__all__ = ["LoadReport", "dedup_token", "load_topic_into_table"]

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What one load run did."""

    consumed: int = 0
    loaded: int = 0
    rejected: int = 0
    batches: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def dedup_token(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Deterministic insert-deduplication token of a partition's offset range."""
    return f"{topic}/{partition}/{first_offset}-{last_offset}"


def load_topic_into_table(
    settings: KafkaSettings,
    warehouse: Warehouse,
    *,
    topic: str,
    table: str,
    record_type: type,
    group_id: str,
    expected: int | None = None,
    idle_seconds: float = 5.0,
    max_seconds: float = 120.0,
) -> LoadReport:
    """Consume ``topic`` from the group's committed offsets into ``table`` until idle or ``expected``."""
    from confluent_kafka import KafkaError, TopicPartition

    from schemas.arrow import to_arrow
    from xpcore.kafka.clients import make_consumer

    codec: RecordCodec[Any] = RecordCodec(record_type, max_record_bytes=settings.max_record_bytes)
    consumer = make_consumer(settings, group_id)
    consumer.subscribe([topic])
    report = LoadReport()
    started = last_message = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if expected is not None and report.consumed >= expected:
                break
            if now - last_message > idle_seconds or now - started > max_seconds:
                break
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"Kafka consume error: {error}")
                by_partition[message.partition()].append(message)
            if not by_partition:
                continue
            last_message = time.monotonic()
            offsets = []
            for partition, batch in sorted(by_partition.items()):
                decoded = codec.decode_many([m.value() for m in batch])
                report.consumed += len(batch)
                report.rejected += len(decoded.failures)
                dead_letters = []
                for position, failure in decoded.failures:
                    reason = failure.reason.value
                    report.rejected_reasons[reason] = report.rejected_reasons.get(reason, 0) + 1
                    message = batch[position]
                    dead_letters.append(
                        make_dead_letter(
                            failure,
                            message.value(),
                            record_kind=codec.record_kind,
                            source_topic=topic,
                            source_partition=partition,
                            source_offset=message.offset(),
                            original_key=message.key(),
                        )
                    )
                first, last = batch[0].offset(), batch[-1].offset()
                if dead_letters:
                    warehouse.insert_arrow(
                        "xp.dead_letters",
                        to_arrow(dead_letters, DeadLetter),
                        dedup_token="dead-letters/" + dedup_token(topic, partition, first, last),
                    )
                if decoded.oks:
                    token = dedup_token(topic, partition, first, last)
                    warehouse.insert_arrow(table, to_arrow(decoded.oks, record_type), dedup_token=token)
                    report.loaded += len(decoded.oks)
                    report.batches += 1
                offsets.append(TopicPartition(topic, partition, batch[-1].offset() + 1))
            consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
    logger.info(
        "loaded topic=%s table=%s consumed=%d loaded=%d rejected=%d",
        topic,
        table,
        report.consumed,
        report.loaded,
        report.rejected,
    )
    return report
