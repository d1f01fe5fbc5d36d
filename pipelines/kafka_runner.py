"""The confluent-kafka runner: one consumer-group member's loop, Kafka → kernel → warehouse → commit.

One consumer in the group ``XP_STREAM_GROUP_ID`` subscribes to ``xp.exposures``, ``xp.events`` and
``xp.dead-letters`` with the *range* assignor, so co-partitioned partitions (same number, same unit ids)
land on the same member. Per batch (byte-bounded ``consume``): :class:`~pipelines.processor.StreamProcessor`
→ :class:`~pipelines.warehouse_sink.WarehouseSink` (every table with the batch's dedup token) → dead
letters produced to ``xp.dead-letters`` and flushed → offsets committed (:class:`OffsetTracker`:
kept pending while commits fail) → counted. What it reuses and what it writes itself: docs/pipeline.md
(the runner seam) and docs/decisions/0050-the-runner-seam.md.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.dead_letter_topic import dead_letters_for_topic
from pipelines.exposures_first import ExposuresFirst
from pipelines.gc_pacing import PacedCollector
from pipelines.merge_pacing import PacedMerges
from pipelines.offset_tracker import OffsetTracker
from pipelines.raw_batch import RawBatch
from pipelines.rebalance_refresh import refresh_after_rebalance
from pipelines.warehouse_sink import WarehouseSink
from xpcore.errors import ConfigError, TransientError
from xpcore.kafka.group_consumer import check_topics, commit_offsets, consume_batch, make_group_consumer
from xpcore.kafka.group_offsets import all_partitions, consumer_lag_or_none, consumer_lags, local_lags

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipelines.stream_report import StreamReport
    from pipelines.worker_setup import StopFlag, WorkerParts

__all__ = ["KafkaRunner", "batch_wait", "raw_records"]

logger = logging.getLogger(__name__)

_REFUSALS = frozenset(
    {
        30,  # GROUP_AUTHORIZATION_FAILED
        29,  # TOPIC_AUTHORIZATION_FAILED
        31,  # CLUSTER_AUTHORIZATION_FAILED
        58,  # SASL_AUTHENTICATION_FAILED
        -169,  # _AUTHENTICATION (librdkafka: SASL handshake failed)
    }
)
"""Kafka error codes that no retry can fix: the worker's principal is not allowed (or not known)."""


def raw_records(messages: list[Any]) -> RawBatch:
    """The batch's records (Kafka timestamps kept as integer ms); errors other than EOF logged or raised.

    Read as columns (:class:`~pipelines.raw_batch.RawBatch`): one C-level pass per getter over the batch
    instead of a Python loop building a tuple per message; a batch holding an error (an EOF, a refusal)
    keeps only its error-free messages.
    """
    from confluent_kafka import KafkaError

    if not messages:
        return RawBatch.of_messages(messages)
    errors = RawBatch.errors_of(messages)
    if not any(errors):  # (a KafkaError is always true; comparing one with None raises)
        return RawBatch.of_messages(messages)
    for error in errors:
        if error is None or error.code() == KafkaError._PARTITION_EOF:
            continue
        if error.fatal():
            raise TransientError(f"Kafka consumer failed: {error}")
        if error.code() in _REFUSALS:  # retrying cannot help: stop with the one line that says why
            raise ConfigError(
                f"Kafka refused the stream worker ({error.name()}: {error.str()}): its principal needs "
                "the ACLs of docs/operations.md#kafka-security (its consumer group must start with "
                "'xp-' or the topic prefix)"
            )
        logger.warning("Kafka consume error: %s", error)
    good = [message for message, error in zip(messages, errors, strict=True) if error is None]
    return RawBatch.of_messages(good)


def batch_wait(wait: float, until_idle: float | None, idle: float) -> float:
    """How long the next consume may wait for records, ``idle`` s after the last ones: ``wait`` (the
    batch wait), but with ``until_idle`` no longer than the idle time left, so that a run ends that long
    after its last records and not up to one batch wait later."""
    if until_idle is not None and 0.0 < until_idle - idle < wait:
        return until_idle - idle
    return wait


class KafkaRunner:
    """The loop of one group member; :meth:`run` returns when stopped, or drained and idle."""

    def __init__(
        self,
        parts: WorkerParts,
        stop: StopFlag,
        report: StreamReport,
        *,
        until_idle: float | None = None,
        on_ready: Callable[[], None] | None = None,
        owns_process: bool = True,
    ) -> None:
        settings = parts.settings
        self.parts, self.settings, self.stop, self.report = parts, settings, stop, report
        self.until_idle, self.on_ready = until_idle, on_ready
        self.sink = WarehouseSink(
            parts.warehouse,
            report=report,
            stopping=lambda: stop.requested,
            retry_max_seconds=settings.stream_insert_retry_max_seconds,
            overlap=settings.stream_overlap_load,
            metrics=parts.metrics,
        )
        self.offsets = OffsetTracker(rejoin_after=max(60.0, settings.stream_session_timeout_seconds * 6))
        self.commit_within = settings.stream_session_timeout_seconds * 2
        # The garbage collector paced by batches while the worker is behind, when it owns the process
        # (not inside `xp up`); automatic while it keeps up (pipelines/gc_pacing.py).
        self.collector = PacedCollector(enabled=owns_process)
        # The embedded store's merges held back the same way, within a parts bound (decision 0111).
        self.merges = PacedMerges(parts.warehouse, enabled=owns_process)
        self.consumer: Any = None
        self.producer: Any = None
        self.assigned: list[Any] = []
        self.held_events: set[int] = set()  # partitions of the events topic held before a revoke
        self.rebalanced = False  # an assignment whose state refresh (decision 0094) is still to do
        self.taken_over: set[int] = set()  # events partitions newly assigned, state not yet refreshed
        self.revoked_during_consume = False
        self.first_batch_at: float | None = None
        # Exposures first on a backlog (decision 0107): events partitions paused while their exposures lag.
        self.exposures_first = (
            ExposuresFirst(
                max_lag=settings.stream_exposures_first_lag,
                max_pause=settings.stream_exposures_first_max_pause_seconds,
            )
            if settings.stream_exposures_first_lag > 0
            else None
        )
        self.resume_events = False  # a new assignment: resume its events partitions (pauses may stay)
        self.lags_asked_at = 0.0  # when the broker was last asked for exposure lags not known locally

    def _new_consumer(self) -> Any:
        return make_group_consumer(
            self.settings,
            self.settings.stream_group_id,
            role="worker",
            session_timeout_seconds=self.settings.stream_session_timeout_seconds,
        )

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = list(partitions)
        events = {p.partition for p in partitions if p.topic == self.parts.topics.events}
        # Every assignment, the first included (the state restored at start is older than it, decision 0094).
        self.taken_over |= events - self.held_events
        self.rebalanced = True
        if self.exposures_first is not None:
            self.exposures_first.reset()
            self.resume_events = True
        logger.info("assigned %s", [(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # The batch being loaded is finished and committed before the partitions go (decision 0094).
        self._finish_load(rejoin=False)
        self.held_events = {p.partition for p in self.assigned if p.topic == self.parts.topics.events}
        self.assigned[:] = []
        self.offsets.revoked((p.topic, p.partition) for p in partitions)
        self.revoked_during_consume = True

    def _commit_pending(self, within: float, *, rejoin: bool = True) -> bool:
        """Commit what is loaded; ``rejoin`` False: never re-create the consumer (inside its callbacks)."""
        if not self.offsets:
            return True
        if commit_offsets(
            self.consumer,
            self.offsets.pending,
            within=within,
            max_delay=self.settings.stream_insert_retry_max_seconds,
        ):
            self.offsets.committed()
            return True
        if self.offsets.commit_failed() and rejoin:
            # Last resort: a fresh consumer finds the coordinator and rejoins; it resumes from the
            # group's last commit, and what it re-reads of the loaded batches is deduplicated.
            logger.warning(
                "offset commits failing for %.0fs: re-creating the consumer", self.offsets.rejoin_after
            )
            self.assigned[:] = []
            old, self.consumer = self.consumer, None
            try:
                if old is not None:
                    old.close()
            except Exception as error:  # the old consumer is broken anyway
                logger.warning("closing the stuck consumer failed: %s", error)
            self.consumer = self._new_consumer()
            self._subscribe()
        return False

    def _subscribe(self) -> None:
        self.consumer.subscribe(
            self.parts.topics.subscribed, on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _finish_load(self, *, rejoin: bool = True) -> None:
        """Wait for the batch being loaded, then dead letters out, offsets committed, report counted."""
        output = self.sink.finish()
        if output is None:
            return
        settings, report = self.settings, self.report
        committed_at = time.monotonic()
        topics = self.parts.topics
        for key, value in dead_letters_for_topic(
            output.dead_letters, topics.inputs, settings.max_record_bytes
        ):
            self.producer.produce(topics.dead_letters, key=key, value=value)
        if self.producer.flush(settings.stream_session_timeout_seconds * 6) > 0:
            raise TransientError("dead letters could not be delivered to Kafka in time")
        self.offsets.loaded(output.offsets)
        self._commit_pending(within=self.commit_within, rejoin=rejoin)
        if self.parts.metrics is not None:
            self.parts.metrics.record_batch(output, self.parts.processor)
        report.stage_seconds["commit"] += time.monotonic() - committed_at
        assert self.first_batch_at is not None
        report.active_seconds = round(time.monotonic() - self.first_batch_at, 3)
        report.add_batch(output, held_released_early=self.parts.processor.attribution.released_early)

    def _order_exposures_first(self) -> None:
        """Pause the events partitions whose exposures partition lags, resume the others (decision 0107).

        The lags come from the consumer's own positions and cached watermarks; a partition not known
        locally (nothing consumed from it yet: e.g. its fetches starved by the events') is asked of the
        broker, at most every 5 s. Pausing drops the partition's prefetched records and resuming fetches
        from the position after the last record handed over: every record is still read once, in order."""
        from confluent_kafka import TopicPartition

        assert self.exposures_first is not None
        topics = self.parts.topics
        events = {tp.partition for tp in self.assigned if tp.topic == topics.events}
        if self.resume_events:
            self.resume_events = False
            if events:
                self.consumer.resume([TopicPartition(topics.events, p) for p in sorted(events)])
        exposures = [tp for tp in self.assigned if tp.topic == topics.exposures and tp.partition in events]
        if not exposures:
            return
        lags = {key[1]: lag for key, lag in local_lags(self.consumer, exposures).items()}
        unknown = [tp for tp in exposures if lags.get(tp.partition) is None]
        if unknown and time.monotonic() - self.lags_asked_at >= 5.0:
            self.lags_asked_at = time.monotonic()
            try:
                asked = consumer_lags(self.consumer, unknown)
                self.exposures_first.broker_lags.update({key[1]: lag for key, lag in asked.items()})
            except Exception as error:  # not known now (broker busy or moving): no reason to pause
                logger.debug("exposure lags unknown: %s", error)
        lags = self.exposures_first.with_broker_lags(lags)
        moves = self.exposures_first.decide(lags, sorted(events), time.monotonic())
        self.report.exposures_first_pauses = self.exposures_first.pauses
        if moves.pause:
            self.consumer.pause([TopicPartition(topics.events, p) for p in sorted(moves.pause)])
            logger.info("events partitions %s paused: their exposures are read first", sorted(moves.pause))
        if moves.resume:
            self.consumer.resume([TopicPartition(topics.events, p) for p in sorted(moves.resume)])
            logger.info("events partitions %s resumed", sorted(moves.resume))

    def _drained(self) -> bool:
        """Every partition held has lag 0; holding none (a rebalance, a broker restart, more workers than
        partitions): the whole group has committed up to the end of every partition."""
        if self.assigned:
            return consumer_lag_or_none(self.consumer, self.assigned) == 0
        everything = all_partitions(self.consumer, self.parts.topics.subscribed)
        return consumer_lag_or_none(self.consumer, everything) == 0

    def run(self) -> None:
        from xpcore.kafka.clients import make_producer

        settings, parts, report = self.settings, self.parts, self.report
        processor, metrics = parts.processor, parts.metrics
        try:
            self.producer = make_producer(settings, role="worker")
            self.consumer = self._new_consumer()
            if self.on_ready is not None:
                self.on_ready()
            check_topics(self.consumer, settings.kafka_bootstrap, parts.topics.subscribed)
            self._subscribe()
            last_activity = time.monotonic()
            self.collector.start()
            while not self.stop.requested:
                consume_started = time.monotonic()
                idle = consume_started - last_activity
                messages = consume_batch(
                    self.consumer,
                    settings.stream_batch_size,
                    batch_wait(settings.stream_batch_wait_seconds, self.until_idle, idle),
                    settings.stream_batch_max_bytes,
                )
                received = time.monotonic()
                if self.revoked_during_consume:  # records taken before a revoke: the new owner reads them
                    self.revoked_during_consume = False
                    held = {(p.topic, p.partition) for p in self.assigned}
                    messages = [m for m in messages if (m.topic(), m.partition()) in held]
                if self.rebalanced:  # before any record of the taken partitions is processed
                    self._finish_load()
                    taken, self.taken_over, self.rebalanced = self.taken_over, set(), False
                    owned = {p.partition for p in self.assigned if p.topic == parts.topics.events}
                    counts = refresh_after_rebalance(parts, report, taken, owned, consumer=self.consumer)
                    logger.info("rebalance: state refreshed from the warehouse %s", counts)
                if self.exposures_first is not None and self.assigned:
                    self._order_exposures_first()
                raws = raw_records(messages)
                if parts.registry_changed():
                    self._finish_load()  # the history insert never runs beside a batch insert
                    parts.apply_registry()
                now = datetime.now(UTC)
                if not raws:
                    self._finish_load()
                    self.collector.when_idle()
                    self.merges.when_idle()
                    processor.attribution.release_expired(now)
                    if self.offsets and not self._commit_pending(within=1.0):
                        continue  # not drained while offsets of loaded batches are uncommitted
                    idle = time.monotonic() - last_activity
                    if metrics is not None and self.assigned:
                        lag = consumer_lag_or_none(self.consumer, self.assigned)
                        if lag is not None:
                            metrics.lag.set(lag)
                    if self.until_idle is not None and idle >= self.until_idle and self._drained():
                        break
                    continue
                last_activity = time.monotonic()
                if self.first_batch_at is None:
                    # From the first records in hand (as the raw-consumer baseline of the benches counts):
                    # waiting for the group join and the first fetch is not throughput.
                    self.first_batch_at = received
                report.stage_seconds["consume"] += last_activity - consume_started
                output = processor.process(raws, now)
                # Remember the batch's ids now, not after its load: the next batch is deduplicated against
                # them while this one loads. Safe because a load either succeeds (retried with the same
                # token) or ends the run, and a new run rebuilds the state from the warehouse.
                processor.remember_ids(output)
                report.stage_seconds["process"] += time.monotonic() - last_activity
                self._finish_load()  # the previous batch: its inserts ran while this one was processed
                backlogged = len(messages) >= settings.stream_batch_size
                self.merges.after_batch(backlogged=backlogged)  # no insert running: the store is free
                self.sink.submit(output)
                if not self.sink.overlap:
                    self._finish_load()
                # Release this batch's objects (reference counting frees them), then collect what survived
                # (a full batch: the worker is behind, the collector is paced); a collection is part of
                # the batch's cost (counted in the active time, as stage "gc").
                messages = []
                del raws
                del output
                collected_from = time.monotonic()
                if self.collector.after_batch(backlogged=backlogged):
                    done = time.monotonic()
                    report.stage_seconds["gc"] += done - collected_from
                    report.active_seconds = round(done - self.first_batch_at, 3)
            self._finish_load()
            if self.offsets and not self._commit_pending(within=self.commit_within):
                raise TransientError("stopped while offsets could not be committed (the batches are loaded)")
        finally:
            self.collector.stop()
            self.sink.close()  # an insert still running (after an error elsewhere) ends before the store does
            self.merges.stop()
            if self.consumer is not None:
                self.consumer.close()
                # It holds our rebalance callbacks (a cycle through this runner): dropped, the worker's
                # state goes by reference counting when the run ends, not by a collection of the whole
                # heap (0.65 s at 100 k units at interpreter exit).
                self.consumer = None
            if self.producer is not None:
                self.producer.flush(10)
