"""Consumer lag of the stream's consumer group, read in the background so pages never wait for Kafka.

Lag of a partition = its high watermark − the group's committed offset (the whole partition when the group
has committed nothing yet). :class:`LagMonitor` refreshes it every few seconds in a daemon thread; when
Kafka does not answer, the latest reading says ``unknown`` with the reason (never an error page).
The offsets are read by the Kafka adapter :mod:`xpcore.kafka.group_offsets`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xpcore.errors import TransientError
from xpcore.kafka.group_offsets import partition_lag, read_group_lag
from xpcore.kafka.topics import EVENTS, EXPOSURES

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["LagMonitor", "LagReading", "partition_lag", "read_consumer_lag"]

logger = logging.getLogger(__name__)


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


def read_consumer_lag(settings: KafkaSettings, group_id: str, *, timeout: float) -> LagReading:
    """The group's lag on the exposures and events topics now (``unknown`` when Kafka does not answer)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    topics = {logical: settings.topic(logical) for logical in (EXPOSURES, EVENTS)}
    try:
        by_topic = read_group_lag(settings, group_id, topics, timeout=timeout, role="dashboard")
    except TransientError as error:
        return LagReading(False, reason=str(error), read_at=now)
    return LagReading(True, sum(by_topic.values()), by_topic, read_at=now)


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
