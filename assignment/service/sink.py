"""The Kafka sink of the service: a write-ahead spool in front of a non-blocking producer.

Every record is first appended to the :class:`~assignment.service.spool.Spool` (one ``write()`` per
request, before the answer: a ``kill -9`` at any moment loses nothing acknowledged; decision 0041),
then handed to a confluent-kafka producer (idempotent, lz4, batched) whose ``produce`` only enqueues
into librdkafka; a poll thread serves delivery reports and moves the spool's cursor over the delivered
prefix. When a record cannot be enqueued (``BufferError``) or its delivery fails (broker down past
``exposure_delivery_timeout``), new records are only appended (keeping order) until a replay thread has
delivered everything after the cursor — each record once, out-of-order deliveries skipped — then
producing goes direct again. After a crash, the next start replays from the cursor with the records'
own ids. The spool is bounded (``XP_SPOOL_MAX_BYTES``): beyond it records are dropped, counted
(``xp_service_sink_records_total{outcome="dropped"}``, ``xp_service_spool_full``) and logged as an
error; the request is still answered.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assignment.service.spool import Spool, SpoolEntry, SpoolFull

if TYPE_CHECKING:
    from xpcore.config import ServiceSettings

__all__ = ["EXPOSURE_LINGER_MS", "KafkaSink"]

logger = logging.getLogger(__name__)

EXPOSURE_LINGER_MS = 100
"""How long the exposure producer waits to fill a batch (librdkafka ``linger.ms``); see decision 0025."""


class KafkaSink:
    """A non-blocking Kafka producer behind a write-ahead spool (nothing acknowledged is lost)."""

    def __init__(
        self, settings: ServiceSettings, *, spool: Spool | None = None, producer: Any = None
    ) -> None:
        self.settings = settings
        self.spool = (
            spool if spool is not None else Spool(settings.spool_path, max_bytes=settings.spool_max_bytes)
        )
        self._producer = producer
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spooling = False
        self._skip_offsets: set[int] = set()
        # directly produced records by spool end offset, in spool order, and their outcomes (set by
        # whichever thread serves delivery reports; set.add is atomic)
        self._inflight: list[int] = []
        self._inflight_head = 0
        self._delivered: set[int] = set()
        self._failed: set[int] = set()
        self.full = False
        self.counts = {
            "produced": 0,
            "delivered": 0,
            "spooled": 0,
            "replayed": 0,
            "delivery_errors": 0,
            "dropped": 0,
        }
        self._pending_delivered = 0
        self.on_count: Callable[[str, int], None] | None = None

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self.spool.open()
        self._spooling = not self.spool.empty  # a previous run left records: replay them first
        if self._producer is None:
            from xpcore.kafka.clients import make_producer

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
        for target, name in (
            (self._poll_loop, "xp-sink-poll"),
            (self._replay_loop, "xp-sink-replay"),
            (self._sync_loop, "xp-sink-fsync"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what Kafka can take within ``timeout``; the rest stays in the spool; close it."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=timeout + 1)
        producer = self._producer
        if producer is not None:
            producer.flush(timeout)
            if len(producer):
                producer.purge()  # undelivered records stay in the spool for the next start
                producer.flush(1.0)
        self._release_delivered()
        with self._lock:
            self.spool.close()

    # request path --------------------------------------------------------------------------------

    def submit(self, topic: str, key: str | None, value: bytes) -> None:
        """Write one record ahead to the spool, then enqueue it; never waits for the network."""
        self.submit_many([(topic, key, value)])

    def submit_many(self, records: list[tuple[str, str | None, bytes]]) -> None:
        """Write records ahead to the spool (one ``write()``), then enqueue them in order."""
        if not records:
            return
        with self._lock:
            try:
                ends = self.spool.append_many(records)
            except SpoolFull as error:
                self._dropped(len(records), error)
                return
            if self.full:
                self.full = False
                logger.warning(
                    "spool accepting records again (%d dropped while full)", self.counts["dropped"]
                )
            if self._spooling:
                self._count("spooled", len(records))
                return
            produce = self._producer.produce
            produced = 0
            for (topic, key, value), end in zip(records, ends, strict=True):
                try:
                    produce(
                        self.settings.topic(topic),
                        value=value,
                        key=key.encode() if key is not None else None,
                        on_delivery=functools.partial(self._on_direct_delivery, end),
                    )
                except BufferError:
                    self._spooling = True  # the rest waits in the spool for the replay
                    self._count("spooled", len(records) - produced)
                    break
                self._inflight.append(end)
                produced += 1
            self._count("produced", produced)

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "kafka",
            **self.counts,
            "spooling": self._spooling,
            "spool_pending_bytes": self.spool.pending_bytes,
            "spool_full": self.full,
            "queued": len(self._producer) if self._producer is not None else 0,
        }

    # internals -----------------------------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        if amount <= 0:
            return
        self.counts[name] += amount
        if self.on_count is not None:
            self.on_count(name, amount)

    def _dropped(self, amount: int, error: SpoolFull) -> None:
        """Caller holds the lock. The spool is full: the records are counted and dropped."""
        if not self.full:
            self.full = True
            logger.error(
                "spool full, dropping records until Kafka takes some (%s; XP_SPOOL_MAX_BYTES, see "
                'xp_service_spool_full and xp_service_sink_records_total{outcome="dropped"})',
                error,
            )
        self._count("dropped", amount)

    def _on_direct_delivery(self, end: int, error: Any, _message: Any) -> None:
        """Delivery report of a directly produced record (by its spool end offset)."""
        if error is None:
            self._delivered.add(end)
            return
        self._failed.add(end)
        self._count("delivery_errors")
        if not self._spooling:
            with self._lock:
                if not self._spooling:
                    logger.warning(
                        "Kafka delivery failed, holding records in the spool from now on: %s", error
                    )
                self._spooling = True

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)
            self._release_delivered()

    def _sync_loop(self) -> None:
        """fsync the spool every ``spool_fsync_interval`` seconds (never on the request path)."""
        while not self._stopping.wait(self.settings.spool_fsync_interval):
            with self._lock:
                handle = self.spool.sync_handle()
            if handle is not None:
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)

    def _release_delivered(self) -> None:
        """Move the cursor over the delivered prefix of the directly produced records (they precede
        every record appended while spooling; after :meth:`_take_over` there are none)."""
        with self._lock:
            inflight, head, delivered = self._inflight, self._inflight_head, self._delivered
            end = None
            while head < len(inflight) and inflight[head] in delivered:
                end = inflight[head]
                delivered.discard(end)
                head += 1
            if end is None:
                return
            self._count("delivered", head - self._inflight_head)
            if head > 4096 and head * 2 > len(inflight):
                del inflight[:head]
                head = 0
            self._inflight_head = head
            self.spool.advance(end)
            if head == len(inflight) and not self._spooling:
                inflight.clear()
                self._inflight_head = 0

    def _take_over(self) -> bool:
        """Once every directly produced record has its delivery report, hand the rest to the
        replay: delivered ones are skipped, failed ones re-sent. False while reports are pending."""
        self._release_delivered()
        with self._lock:
            pending = self._inflight[self._inflight_head :]
            if any(end not in self._delivered and end not in self._failed for end in pending):
                return False
            self._skip_offsets.update(end for end in pending if end in self._delivered)
            self._count("delivered", sum(1 for end in pending if end in self._delivered))
            self._count("spooled", sum(1 for end in pending if end in self._failed))
            self._inflight.clear()
            self._inflight_head = 0
            self._delivered.clear()
            self._failed.clear()
            return True

    def _replay_loop(self) -> None:
        interval = self.settings.spool_replay_interval
        batch_size = 1  # probe with one record after a failure, then larger batches
        while not self._stopping.wait(interval if batch_size == 1 else 0):
            if not self._spooling:
                batch_size = 1
                continue
            if self._inflight and not self._take_over():
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
