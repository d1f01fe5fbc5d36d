"""A consumer-group member that commits by hand: its factory, byte-bounded batches, patient commits.

An adapter for the stream's Kafka runner (``pipelines/kafka_runner.py``); confluent-kafka is imported
inside the functions. Offsets are ``(topic, partition) → next offset`` mappings here, so callers need no
client types.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from xpcore.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xpcore.config import KafkaSettings

__all__ = [
    "CHUNK",
    "FETCH_MAX_BYTES",
    "check_topics",
    "commit_offsets",
    "consume_batch",
    "high_watermarks",
    "make_group_consumer",
]

logger = logging.getLogger(__name__)

FETCH_MAX_BYTES = 16 * 1024 * 1024
"""librdkafka's ``fetch.max.bytes`` and ``queued.max.messages.kbytes`` of the worker (defaults: 50 MiB and
64 MiB). Both count compressed bytes: they bound the prefetch queue, not what it decompresses to."""
CHUNK = 500
"""Messages taken from the consumer per call while a batch fills (the byte budget is checked between)."""


def make_group_consumer(
    settings: KafkaSettings, group_id: str, *, role: str, session_timeout_seconds: float, **overrides: Any
) -> Any:
    """A member of ``group_id`` that never auto-commits, with the *range* assignor (co-partitioned topics:
    partition *n* of each lands on the same member) and bounded prefetch; ``overrides``: more librdkafka
    settings (the Flink runner's loader reads ``isolation.level=read_committed``)."""
    from xpcore.kafka.clients import make_consumer

    return make_consumer(
        settings,
        group_id,
        role=role,
        **{
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 100,
            # While the prefetch queue is over its bounds, librdkafka postpones a partition's next fetch
            # by this much (default 1 s): a worker catching up empties the queue batch after batch and
            # then waited up to a second for data, and after pausing the events partitions (exposures
            # first, decision 0107) the exposures came ~0.5 s late (decision 0113).
            "fetch.queue.backoff.ms": 20,
            # Bounds on what librdkafka fetches and queues ahead (counted before decompression: the byte
            # budget of a batch, consume_batch, bounds what the worker holds after it).
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            "fetch.max.bytes": FETCH_MAX_BYTES,
            "receive.message.max.bytes": FETCH_MAX_BYTES + 1024 * 1024,
            "queued.max.messages.kbytes": FETCH_MAX_BYTES // 1024,
            "session.timeout.ms": int(session_timeout_seconds * 1000),
            "heartbeat.interval.ms": int(session_timeout_seconds * 1000 / 5),
            **overrides,
        },
    )


def consume_batch(consumer: Any, count: int, timeout: float, max_bytes: int) -> list[Any]:
    """Up to ``count`` messages within ``timeout`` s (as one ``consume(count, timeout)``), but no more once
    their values hold ``max_bytes``: taken :data:`CHUNK` at a time, the budget checked after each chunk,
    so a batch holds at most ``max_bytes`` plus one chunk (docs/decisions/0035)."""
    deadline = time.monotonic() + timeout
    asked = min(count, CHUNK)
    messages: list[Any] = consumer.consume(num_messages=asked, timeout=timeout)
    chunk = messages
    held = 0
    while len(chunk) == asked and len(messages) < count:  # a short chunk: the wait ran out
        try:
            held += sum(map(len, map(type(chunk[0]).value, chunk)))  # unbound: ~30 ns, methodcaller ~150
        except TypeError:  # a value-less message (tombstone, error): counted as empty
            held += sum(len(message.value() or b"") for message in chunk)
        if held >= max_bytes:
            break
        asked = min(count - len(messages), CHUNK)
        chunk = consumer.consume(num_messages=asked, timeout=max(0.0, deadline - time.monotonic()))
        messages.extend(chunk)
    return messages


def check_topics(consumer: Any, bootstrap: str, topics: list[str]) -> None:
    """Fail with one clear line when Kafka is unreachable or a topic is missing (never wait forever)."""
    from confluent_kafka import KafkaException

    try:
        metadata = consumer.list_topics(timeout=15)
    except KafkaException as error:
        raise TransientError(f"cannot reach Kafka at {bootstrap}: {error}") from error
    missing = [topic for topic in topics if topic not in metadata.topics]
    if missing:
        raise ConfigError(f"topic {missing[0]} does not exist on {bootstrap}: run `xp stack up`")


_REBALANCED = ("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "_NO_OFFSET")


def commit_offsets(
    consumer: Any, offsets: Mapping[tuple[str, int], int], *, within: float, max_delay: float
) -> bool:
    """Commit synchronously; True once done (or moot after a rebalance), False if not done ``within`` s.

    Retries while the broker or the group coordinator is unavailable (back-off 0.5 s doubling to
    ``max_delay``), but only for ``within`` seconds: the caller then keeps the offsets pending and goes
    back to ``consume``, which is what lets librdkafka finish what the outage started (serve the
    rebalance, rejoin the group, find the new coordinator). Spinning here without polling can wait for
    the coordinator forever (seen after a broker restart on a loaded machine). Giving up is safe: the
    batch is loaded, so a re-delivery of its records is deduplicated (ids, tokens); the pending offsets
    go out with the next commit. After a rebalance the partitions may belong to another member: it
    re-reads from the last commit, and retrying a commit with a stale generation never succeeds, so that
    case returns True at once.
    """
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    partitions = [TopicPartition(topic, p, offset) for (topic, p), offset in offsets.items()]
    deadline = time.monotonic() + within
    delay = 0.5
    while True:
        try:
            consumer.commit(offsets=partitions, asynchronous=False)
            return True
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            name = error.name() if isinstance(error, KafkaError) else ""
            if name in _REBALANCED:
                logger.warning("offset commit skipped after a rebalance: %s", error)
                return True
            if isinstance(error, KafkaError) and error.fatal():
                raise TransientError(f"Kafka consumer failed: {error}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("offset commit failed (%s); kept pending, consuming on", error)
                return False
            pause = min(delay, left)
            logger.warning("offset commit failed (%s); retrying in %.1fs", error, pause)
            time.sleep(pause)
            delay = min(delay * 2, max_delay)


def high_watermarks(consumer: Any, topic: str) -> dict[int, int]:
    """The topic's high watermark per partition now, through ``consumer`` (a group member)."""
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=15)
    return {
        partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)[1]
        for partition in metadata.topics[topic].partitions
    }
