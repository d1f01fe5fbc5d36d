"""Consumer lag of the stream's consumer group, read in the background so pages never wait for Kafka.

Lag of a partition = its high watermark − the group's committed offset (the whole partition when the group
has committed nothing yet). :class:`LagMonitor` refreshes it every few seconds in a daemon thread; when
Kafka does not answer, the latest reading says ``unknown`` with the reason (never an error page).
confluent-kafka is imported inside the thread's function (an adapter).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xpcore.kafka.topics import EVENTS, EXPOSURES

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["LagMonitor", "LagReading", "partition_lag", "read_consumer_lag"]

logger = logging.getLogger(__name__)
LIBRDKAFKA_LOGGER = logging.getLogger("xpcore.kafka.librdkafka")


@dataclass(frozen=True)
class LagReading:
    """One reading: total lag and per topic, or ``unknown`` with why."""

    known: bool
    total: int | None = None
    by_topic: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    read_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.known else "unknown",
            "total": self.total,
            "by_topic": self.by_topic,
            "reason": self.reason,
            "read_at": self.read_at,
        }


def partition_lag(high_watermark: int, low_watermark: int, committed: int | None) -> int:
    """Messages the group has not consumed yet in one partition (never negative)."""
    start = committed if committed is not None and committed >= 0 else low_watermark
    return max(high_watermark - start, 0)


def read_consumer_lag(settings: KafkaSettings, group_id: str, *, timeout: float) -> LagReading:
    """The group's lag on the exposures and events topics now (``unknown`` when Kafka does not answer)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    now = datetime.now(UTC).isoformat(timespec="seconds")
    consumer = Consumer(
        {
            **settings.confluent_config("dashboard"),
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
        for logical in (EXPOSURES, EVENTS):
            topic = settings.topic(logical)
            if topic not in metadata.topics:
                continue
            partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
            committed = consumer.committed(partitions, timeout=timeout)
            total = 0
            for tp in committed:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=timeout
                )
                total += partition_lag(high, low, tp.offset)
            by_topic[logical] = total
        return LagReading(True, sum(by_topic.values()), by_topic, read_at=now)
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        return LagReading(False, reason=f"Kafka unreachable: {reason}", read_at=now)
    finally:
        consumer.close()


class LagMonitor:
    """Reads the lag every ``interval`` seconds in a daemon thread; :attr:`latest` never blocks."""

    def __init__(self, settings: KafkaSettings, group_id: str, *, interval: float, timeout: float) -> None:
        self._settings, self._group_id = settings, group_id
        self._interval, self._timeout = interval, timeout
        self._latest = LagReading(False, reason="not read yet")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> LagReading:
        return self._latest

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dashboard-lag", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout * 4 + 1)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._latest = read_consumer_lag(self._settings, self._group_id, timeout=self._timeout)
            except Exception as error:  # never let the thread die: the page shows why
                logger.debug("consumer lag read failed", exc_info=True)
                self._latest = LagReading(False, reason=f"cannot read lag: {error}")
            self._stop.wait(max(self._interval - (time.monotonic() - started), 0.5))
