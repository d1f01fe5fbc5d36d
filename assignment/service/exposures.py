"""Exposures: built from assignments, deduplicated in a window, produced to Kafka without blocking.

- :func:`build_exposure` / :func:`exposure_id`: pure. The id is a hash of unit × experiment ×
  variation × dedup-window index, so the same exposure re-sent (spool replay, a restart or another
  replica in the same window) carries the same id and the stream's deduplication absorbs it.
- :class:`DedupWindow`: a bounded TTL set (LRU eviction) of unit × experiment × variation.
- :class:`RecordSink`: where records go (``submit(topic, key, value)``, never blocks).
- :class:`KafkaSink`: a confluent-kafka producer (idempotent, lz4, batched) whose ``produce`` only
  enqueues into librdkafka; a poll thread serves delivery reports. A record that cannot be enqueued
  (``BufferError``) or whose delivery fails (broker down past ``exposure_delivery_timeout``) is
  appended to the :class:`~assignment.service.spool.Spool`; from then on new records go to the spool
  too (keeping order) until a replay thread has delivered all of it, then producing goes direct again.
  On shutdown, records still queued in librdkafka are purged into the spool: nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from assignment.hashing import hash_string
from assignment.results import FeatureResult
from assignment.service.spool import Spool, SpoolEntry
from schemas import Exposure, ExposureSource

if TYPE_CHECKING:
    from xpstream.config import ServiceSettings

__all__ = ["DedupWindow", "KafkaSink", "MemorySink", "RecordSink", "build_exposure", "exposure_id"]

logger = logging.getLogger(__name__)

EXPOSURE_LINGER_MS = 100
"""How long the exposure producer waits to fill a batch (librdkafka ``linger.ms``); see decision 0025."""


def exposure_id(experiment_key: str, unit_id: str, variation_id: int, window_index: int) -> str:
    """Stable id of an exposure: same unit × experiment × variation in the same window → same id."""
    text = f"{experiment_key}\x1f{unit_id}\x1f{variation_id}\x1f{window_index}"
    return "svc-" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def build_exposure(
    result: FeatureResult,
    feature_key: str,
    *,
    attributes: Mapping[str, Any],
    copied_attributes: tuple[str, ...],
    overridden: bool,
    now: datetime,
    window_seconds: float,
    user_agent: str | None = None,
) -> Exposure | None:
    """The exposure of one in-experiment assignment (None when the unit is not in an experiment)."""
    if not result.in_experiment or result.variation_id is None or not result.experiment_key:
        return None
    unit_id = hash_string(result.hash_value)
    if not unit_id:
        return None
    window = int(now.timestamp() // window_seconds) if window_seconds > 0 else int(now.timestamp() * 1000)
    copied = {}
    for name in copied_attributes:
        value = attributes.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            copied[name] = str(value)[:256]
    return Exposure(
        exposure_id=exposure_id(result.experiment_key, unit_id, result.variation_id, window),
        unit_id=unit_id[:256],
        hash_attribute=result.hash_attribute or "id",
        experiment_key=result.experiment_key,
        variation_id=result.variation_id,
        variation_key=result.variation_key or str(result.variation_id),
        feature_key=feature_key,
        bucket=result.bucket,
        overridden=overridden,
        source=ExposureSource.SERVICE,
        attributes=copied,
        user_agent=user_agent[:512] if user_agent else None,
        exposed_at=now,
        sent_at=now,
    )


class DedupWindow:
    """Remembers unit × experiment × variation for ``seconds``, at most ``max_entries`` keys.

    ``first_seen(key)`` is True the first time a key is seen in its window. Two generations of
    sharded dicts: a key lives in the current generation; when a window has passed (or the current
    one holds half of ``max_entries``) the current becomes the previous and the old previous is
    dropped (its keys have expired, or are the oldest when memory is the limit). Sharding keeps every
    dict small, so no insert ever pays for rehashing a huge table (one big dict stalls a request
    for tens of milliseconds when it grows past ~100k keys); retired shards are cleared one per call.
    Not thread-safe: the service calls it from the event loop thread only."""

    SHARDS = 64

    def __init__(self, seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._generation_size = max(1, max_entries // 2)
        self._current: list[dict[tuple[str, str, int], float]] = [{} for _ in range(self.SHARDS)]
        self._previous: list[dict[tuple[str, str, int], float]] = [{} for _ in range(self.SHARDS)]
        self._current_count = 0
        self._previous_count = 0
        self._started = clock()
        self._retired: list[dict[tuple[str, str, int], float]] = []

    def __len__(self) -> int:
        return self._current_count + self._previous_count

    def first_seen(self, key: tuple[str, str, int]) -> bool:
        if self.seconds <= 0:
            return True
        now = self._clock()
        if self._retired:
            self._retired.pop().clear()
        if now - self._started >= self.seconds or self._current_count >= self._generation_size:
            self._rotate(now)
        shard = hash(key) % self.SHARDS
        expiry = self._current[shard].get(key)
        if expiry is None:
            expiry = self._previous[shard].get(key)
        if expiry is not None and expiry > now:
            return False
        self._current[shard][key] = now + self.seconds
        self._current_count += 1
        return True

    def _rotate(self, now: float) -> None:
        if now - self._started >= 2 * self.seconds:
            # idle for two windows: everything has expired
            self._retired.extend(self._current)
            self._current = [{} for _ in range(self.SHARDS)]
            self._current_count = 0
        self._retired.extend(self._previous)
        self._previous, self._previous_count = self._current, self._current_count
        self._current, self._current_count = [{} for _ in range(self.SHARDS)], 0
        self._started = now


class RecordSink(Protocol):
    """Where the service sends records; ``submit`` never blocks on the network."""

    def submit(self, topic: str, key: str | None, value: bytes) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class MemorySink:
    """Keeps submitted records in a list (tests, `--no-kafka` runs)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, bytes]] = []

    def submit(self, topic: str, key: str | None, value: bytes) -> None:
        self.records.append((topic, key, value))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"kind": "memory", "records": len(self.records)}


class KafkaSink:
    """A non-blocking Kafka producer with a disk spool for whatever Kafka does not take."""

    def __init__(
        self, settings: ServiceSettings, *, spool: Spool | None = None, producer: Any = None
    ) -> None:
        self.settings = settings
        self.spool = spool if spool is not None else Spool(settings.spool_path)
        self._producer = producer
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spooling = False
        self._skip_offsets: set[int] = set()
        self.counts = {"produced": 0, "delivered": 0, "spooled": 0, "replayed": 0, "delivery_errors": 0}
        # successful deliveries not yet counted: appended by whichever thread polls (deque appends
        # and pops are atomic), moved into ``counts`` by the poll loop
        self._delivered_tally: deque[None] = deque()
        self.on_count: Callable[[str, int], None] | None = None

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self.spool.open()
        self._spooling = not self.spool.empty
        if self._producer is None:
            from xpstream.kafka.clients import make_producer

            timeout_ms = int(self.settings.exposure_delivery_timeout * 1000)
            self._producer = make_producer(
                self.settings,
                role="service",
                **{
                    "message.timeout.ms": timeout_ms,
                    "queue.buffering.max.messages": 200_000,
                    # exposures are not latency-critical: fewer, larger batches cost the service
                    # (and the broker) less CPU per record (decision 0025)
                    "linger.ms": EXPOSURE_LINGER_MS,
                    # librdkafka's own logs (e.g. every refused reconnect) go through Python logging
                    "logger": logging.getLogger("assignment.service.librdkafka"),
                },
            )
        for target, name in ((self._poll_loop, "xp-sink-poll"), (self._replay_loop, "xp-sink-replay")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what Kafka can take within ``timeout``; spool the rest; close the spool."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=timeout + 1)
        producer = self._producer
        if producer is not None:
            producer.flush(timeout)
            if len(producer):
                producer.purge()  # delivery reports with a purge error spool the records
                producer.flush(1.0)
            self._count_delivered()
        with self._lock:
            self.spool.close()

    # request path --------------------------------------------------------------------------------

    def submit(self, topic: str, key: str | None, value: bytes) -> None:
        """Enqueue one record; never waits for the network."""
        if self._spooling:
            with self._lock:
                if self._spooling:
                    self._to_spool(topic, key, value)
                    return
        try:
            self._producer.produce(
                self.settings.topic(topic),
                value=value,
                key=key.encode() if key is not None else None,
                on_delivery=self._on_direct_delivery,
            )
            self._count("produced")
        except BufferError:
            with self._lock:
                self._spooling = True
                self._to_spool(topic, key, value)

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "kafka",
            **self.counts,
            "spooling": self._spooling,
            "spool_pending_bytes": self.spool.pending_bytes,
            "queued": len(self._producer) if self._producer is not None else 0,
        }

    # internals -----------------------------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount
        if self.on_count is not None:
            self.on_count(name, amount)

    def _to_spool(self, topic: str, key: str | None, value: bytes) -> None:
        """Append to the spool (caller holds the lock)."""
        self.spool.append(topic, key, value)
        self._count("spooled")

    def _on_direct_delivery(self, error: Any, message: Any) -> None:
        """Delivery report of a directly produced record (one bound method: no closure per record).
        Successes are only tallied here; :meth:`_poll_loop` adds them to the counters after each
        poll, so the thread serving reports holds the GIL as briefly as possible."""
        if error is None:
            self._delivered_tally.append(None)
            return
        self._count("delivery_errors")
        key = message.key()
        topic = message.topic()[len(self.settings.topic_prefix) :]  # the spool keeps logical names
        with self._lock:
            if not self._spooling:
                logger.warning("Kafka delivery failed, spooling records from now on: %s", error)
            self._spooling = True
            self._to_spool(topic, key.decode() if key is not None else None, message.value())

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)
            self._count_delivered()

    def _count_delivered(self) -> None:
        """Move the tallied successful deliveries into ``counts`` (and the metrics)."""
        tally = self._delivered_tally
        delivered = len(tally)
        if delivered:
            for _ in range(delivered):  # appends racing with this land after the counted ones
                tally.popleft()
            self._count("delivered", delivered)

    def _replay_loop(self) -> None:
        interval = self.settings.spool_replay_interval
        batch_size = 1  # probe with one record after a failure, then larger batches
        while not self._stopping.wait(interval if batch_size == 1 else 0):
            if not self._spooling:
                batch_size = 1
                continue
            delivered_all = self._replay_batch(batch_size)
            batch_size = 500 if delivered_all else 1

    def _replay_batch(self, batch_size: int) -> bool:
        """Produce the next spooled records and wait for them; advance over the delivered prefix."""
        with self._lock:
            entries = [e for e in self.spool.read_batch(batch_size) if e.end_offset not in self._skip_offsets]
            if not entries:
                self._advance_or_finish(None)
                return True
        outcomes: dict[int, bool] = {}

        def report_for(entry: SpoolEntry) -> Callable[[Any, Any], None]:
            def report(error: Any, _message: Any) -> None:
                outcomes[entry.end_offset] = error is None

            return report

        for entry in entries:
            try:
                self._producer.produce(
                    self.settings.topic(entry.topic),
                    value=entry.value,
                    key=entry.key.encode() if entry.key is not None else None,
                    on_delivery=report_for(entry),
                )
            except BufferError:
                break
        deadline = time.monotonic() + self.settings.exposure_delivery_timeout + 5
        while len(outcomes) < len(entries) and time.monotonic() < deadline and not self._stopping.is_set():
            self._producer.poll(0.05)
        delivered_prefix_end: int | None = None
        prefix_intact = True
        replayed = 0
        for entry in entries:
            ok = outcomes.get(entry.end_offset, False)
            if ok:
                replayed += 1
                if prefix_intact:
                    delivered_prefix_end = entry.end_offset
                else:
                    self._skip_offsets.add(entry.end_offset)  # delivered out of order: never re-send
            else:
                prefix_intact = False
        if replayed:
            self._count("replayed", replayed)
        with self._lock:
            self._advance_or_finish(delivered_prefix_end)
        if not prefix_intact:
            logger.info("spool replay waiting for Kafka (%d bytes pending)", self.spool.pending_bytes)
        return prefix_intact

    def _advance_or_finish(self, offset: int | None) -> None:
        """Caller holds the lock. Advance the cursor (skipping already-delivered lines); when the spool
        is drained, go back to producing directly."""
        if offset is not None:
            self.spool.advance(offset)
        while self._skip_offsets and not self.spool.empty:
            head = self.spool.read_batch(1)
            if not head or head[0].end_offset not in self._skip_offsets:
                break
            self._skip_offsets.discard(head[0].end_offset)
            self.spool.advance(head[0].end_offset)
        if self.spool.empty:
            self._skip_offsets.clear()
            if self._spooling:
                logger.info("spool drained, producing directly again")
            self._spooling = False
