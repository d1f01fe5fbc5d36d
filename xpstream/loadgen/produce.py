"""The thin Kafka side of loadgen: confluent-kafka, keyed by unit id, throttled by a token bucket.

Delivery reports are requested for failures only (``delivery.report.only.error``), so a record counts
as delivered when it left the queue by the end of :meth:`RecordProducer.close` without an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from xpstream.loadgen.ratelimit import TokenBucket

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings
    from xpstream.loadgen.simulate import OutRecord

__all__ = ["ProduceReport", "RecordProducer"]

logger = logging.getLogger(__name__)

POLL_EVERY: Final = 1_000
"""Records between two ``poll(0)`` calls (delivery callbacks, queue space)."""
PRODUCER_OVERRIDES: Final[dict[str, Any]] = {
    "delivery.report.only.error": True,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.timeout.ms": 60_000,
}


@dataclass(frozen=True)
class ProduceReport:
    """How producing went."""

    sent: int
    """Records handed to the producer."""
    failed: int
    """Records the broker did not acknowledge (delivery error or still queued at the end)."""
    first_error: str | None
    seconds: float

    @property
    def delivered(self) -> int:
        return self.sent - self.failed

    @property
    def rate(self) -> float:
        """Records per second, from the first send to the end of the flush."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class RecordProducer:
    """Sends :data:`OutRecord` batches; call :meth:`close` once to flush and get the report."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        rate: float | None = None,
        producer: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failed = 0
        self._first_error: str | None = None
        if producer is None:
            from xpcore.kafka.clients import make_producer

            producer = make_producer(
                settings, role="loadgen", on_delivery=self._on_delivery, **PRODUCER_OVERRIDES
            )
        self._producer = producer
        self._topics: dict[str, str] = {}
        self._settings = settings
        self._bucket = TokenBucket(rate, clock=clock) if rate else None
        self._clock = clock
        self._started: float | None = None
        self.sent = 0

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failed += 1
            if self._first_error is None:
                self._first_error = str(error)
                logger.warning("delivery failed: %s", error)

    def send(self, records: Sequence[OutRecord], on_progress: Callable[[int], None] | None = None) -> None:
        """Produce ``records`` in order (waiting for queue space when the local queue is full)."""
        if self._started is None:
            self._started = self._clock()
        producer, topics = self._producer, self._topics
        produce, poll = producer.produce, producer.poll
        step = POLL_EVERY
        if self._bucket is not None:
            step = max(1, min(POLL_EVERY, int(self._bucket.rate / 20)))
        for start in range(0, len(records), step):
            block = records[start : start + step]
            if self._bucket is not None:
                self._bucket.acquire(len(block))
            for logical, key, value in block:
                topic = topics.get(logical)
                if topic is None:
                    topic = topics[logical] = self._settings.topic(logical)
                try:
                    produce(topic, value, key)
                except BufferError:  # local queue full: serve callbacks until there is room
                    while True:
                        poll(0.05)
                        try:
                            produce(topic, value, key)
                            break
                        except BufferError:
                            continue
            poll(0)
            self.sent += len(block)
            if on_progress is not None:
                on_progress(len(block))

    def close(self, timeout: float = 90.0) -> ProduceReport:
        """Flush; records still queued after ``timeout`` seconds count as failed."""
        remaining = self._producer.flush(timeout)
        if remaining:
            self._failed += remaining
            if self._first_error is None:
                self._first_error = f"{remaining} records still queued after {timeout:g}s"
        started = self._started if self._started is not None else self._clock()
        return ProduceReport(
            sent=self.sent,
            failed=self._failed,
            first_error=self._first_error,
            seconds=self._clock() - started,
        )
