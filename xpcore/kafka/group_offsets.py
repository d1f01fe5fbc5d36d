"""A consumer group's lag: committed offsets (or a live consumer's positions) against high watermarks.

An adapter (confluent-kafka imported inside the functions). Two readers use it:

- the stream runner asks its own consumer whether the partitions it holds are drained
  (:func:`consumer_lag_or_none`; the position, else the group's commit), and, holding none, whether the
  whole group is (:func:`all_partitions`);
- the dashboard asks from outside the group what it has not consumed yet (:func:`read_group_lag`: the
  group's committed offsets, read with a consumer that joins nothing).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from xpcore.errors import TransientError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xpcore.config import KafkaSettings

__all__ = [
    "LagUnknown",
    "all_partitions",
    "consumer_lag",
    "consumer_lag_or_none",
    "consumer_lags",
    "end_offsets",
    "local_lags",
    "partition_count",
    "partition_lag",
    "read_group_lag",
    "topic_partition_count",
]

logger = logging.getLogger(__name__)
LIBRDKAFKA_LOGGER = logging.getLogger("xpcore.kafka.librdkafka")


class LagUnknown(Exception):
    """The lag cannot be told right now (no partitions, watermarks unknown)."""


def partition_lag(high_watermark: int, low_watermark: int, committed: int | None) -> int:
    """Messages the group has not consumed yet in one partition (never negative)."""
    start = committed if committed is not None and committed >= 0 else low_watermark
    return max(high_watermark - start, 0)


def consumer_lag(consumer: Any, partitions: list[Any], *, timeout: float = 10) -> int:
    """:func:`consumer_lags` summed over ``partitions``."""
    return sum(consumer_lags(consumer, partitions, timeout=timeout).values())


def consumer_lags(consumer: Any, partitions: list[Any], *, timeout: float = 10) -> dict[tuple[str, int], int]:
    """Records ``consumer`` has not consumed yet per ``(topic, partition)`` (0 when drained): its position,
    else the group's commit, else the low watermark, against the high watermark read from the broker.
    :class:`LagUnknown` without partitions or while a watermark is unknown (leader moving, broker
    restarting); confluent-kafka's ``KafkaException`` when the broker does not answer.

    The watermarks of all partitions are read in one batched offsets request per broker
    (:func:`end_offsets`), not one round trip per partition: the drained check at the end of an
    ``--until-idle`` run asked 12 partitions one by one (~0.1 s each behind the consumer's fetches)."""
    if not partitions:
        raise LagUnknown("no partitions")
    keys = [(tp.topic, tp.partition) for tp in partitions]
    positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(partitions)}
    committed = {
        (tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=timeout)
    }
    starts = {key: positions.get(key, -1) for key in keys}
    starts = {key: at if at >= 0 else committed.get(key, -1) for key, at in starts.items()}
    highs = end_offsets(consumer, keys, _LATEST, timeout)
    unread = [key for key, at in starts.items() if at < 0]
    lows = end_offsets(consumer, unread, _EARLIEST, timeout) if unread else {}
    return {key: max(0, highs[key] - (starts[key] if starts[key] >= 0 else lows[key])) for key in keys}


def local_lags(consumer: Any, partitions: list[Any]) -> dict[tuple[str, int], int | None]:
    """Records left to read per ``(topic, partition)`` from what the consumer knows without asking the
    broker: its position against the high watermark librdkafka keeps from its last fetch of the partition;
    None where either is not known yet (nothing consumed from it since its assignment, or never fetched)."""
    lags: dict[tuple[str, int], int | None] = {}
    for tp in consumer.position(partitions):
        high = consumer.get_watermark_offsets(tp, cached=True)[1] if tp.offset >= 0 else -1
        lags[(tp.topic, tp.partition)] = max(high - tp.offset, 0) if high >= 0 else None
    return lags


_LATEST, _EARLIEST = -1, -2
"""ListOffsets' special timestamps: the end offset (high watermark, or the last stable offset under
``read_committed``, as ``get_watermark_offsets``), the start offset (low watermark)."""


def end_offsets(consumer: Any, keys: list[tuple[str, int]], which: int, timeout: float) -> dict[Any, int]:
    """``(topic, partition) → offset`` of ``which`` (:data:`_LATEST` or :data:`_EARLIEST`) for every key,
    in one ``offsets_for_times`` call (librdkafka batches the partitions per leader); the same offsets
    as ``get_watermark_offsets(cached=False)``, with the consumer's isolation level.
    :class:`LagUnknown` when one is not known."""
    from confluent_kafka import TopicPartition

    if not keys:
        return {}
    asked = [TopicPartition(topic, partition, which) for topic, partition in keys]
    found = {}
    for tp in consumer.offsets_for_times(asked, timeout=timeout):
        if tp.error is not None or tp.offset < 0:
            raise LagUnknown(f"watermarks of {tp.topic}/{tp.partition} unknown")
        found[(tp.topic, tp.partition)] = tp.offset
    missing = [key for key in keys if key not in found]
    if missing:
        raise LagUnknown(f"watermarks of {missing[0][0]}/{missing[0][1]} unknown")
    return found


def consumer_lag_or_none(consumer: Any, partitions: list[Any]) -> int | None:
    """:func:`consumer_lag`, or None when the broker cannot say right now (e.g. restarting)."""
    from confluent_kafka import KafkaException

    try:
        return consumer_lag(consumer, partitions)
    except (KafkaException, LagUnknown) as error:
        logger.warning("cannot read consumer lag: %s", error)
        return None


def all_partitions(consumer: Any, topics: list[str], *, timeout: float = 10) -> list[Any]:
    """Every partition of ``topics`` (empty when metadata is unavailable: never "drained" then)."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(timeout=timeout)
    except KafkaException:
        return []
    return [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in metadata.topics
        for partition in metadata.topics[topic].partitions
    ]


def read_group_lag(
    settings: KafkaSettings,
    group_id: str,
    topics: Mapping[str, str],
    *,
    timeout: float,
    role: str | None = "dashboard",
) -> dict[str, int]:
    """``label → lag`` of group ``group_id`` on each of ``topics`` (``label → topic``; a missing topic is
    left out): high watermark − the group's committed offset per partition (:func:`partition_lag`).
    Read with a consumer that joins nothing; :class:`~xpcore.errors.TransientError` (``Kafka
    unreachable: …``) when the broker does not answer within ``timeout``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            **settings.confluent_config(role),
            "group.id": group_id,
            "enable.auto.commit": False,
            "socket.timeout.ms": max(int(timeout * 1000), 1000),
            "log_level": 0,
        },
        logger=LIBRDKAFKA_LOGGER,
    )
    try:
        metadata = consumer.list_topics(timeout=timeout)
        by_topic: dict[str, int] = {}
        for label, topic in topics.items():
            if topic not in metadata.topics:
                continue
            partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
            total = 0
            for tp in consumer.committed(partitions, timeout=timeout):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=timeout
                )
                total += partition_lag(high, low, tp.offset)
            by_topic[label] = total
        return by_topic
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        raise TransientError(f"Kafka unreachable: {reason}") from error
    finally:
        consumer.close()


def topic_partition_count(settings: KafkaSettings, topic: str, *, timeout: float, role: str | None) -> int:
    """How many partitions ``topic`` has (read with a consumer that joins nothing);
    :class:`~xpcore.errors.TransientError` when the broker does not answer or does not know the topic."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {**settings.confluent_config(role), "group.id": "xp-metadata", "log_level": 0},  # joins no group
        logger=LIBRDKAFKA_LOGGER,
    )
    try:
        return partition_count(consumer, topic, timeout=timeout)
    finally:
        consumer.close()


def partition_count(client: Any, topic: str, *, timeout: float) -> int:
    """How many partitions ``topic`` has, asked through a client that is connected already (one metadata
    request; a new client costs a connection and its authentication, ~0.3–0.5 s);
    :class:`~xpcore.errors.TransientError` when the broker does not answer or does not know the topic."""
    from confluent_kafka import KafkaException

    try:
        metadata = client.list_topics(topic, timeout=timeout)
    except KafkaException as error:
        raise TransientError(f"Kafka unreachable: {error}") from error
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise TransientError(f"topic {topic} not described by the broker")
    return len(described.partitions)
