"""The Faust runner (``xp stream run --runner faust``): the same processor and sink in a Faust agent.

One Faust app whose id is ``XP_STREAM_GROUP_ID`` (its consumer group) runs one agent, concurrency 1,
over ``xp.exposures``, ``xp.events`` and ``xp.dead-letters`` (raw bytes). Per batch
(``stream.noack_take(XP_STREAM_BATCH_SIZE, within=XP_STREAM_BATCH_WAIT_SECONDS)``, cut by count or time):
:class:`~pipelines.processor.StreamProcessor` → :class:`~pipelines.warehouse_sink.WarehouseSink` (every
table with the batch's dedup token) → dead letters produced to ``xp.dead-letters`` and flushed → only
then ``event.ack()`` for every event of the batch → a commit of the acked offsets. The processing and
the load run in a thread (the event loop keeps the group's heartbeats and fetches going meanwhile).

What keeps it exact (docs/decisions/0073-the-faust-runner.md):

- nothing is acked before the load: ``noack_take`` never acks (``take()`` and ``async with event`` ack
  even when the insert raised); a failed load ends the run without an ack, so the group resumes at the
  last commit and a restart deduplicates by id against the state rebuilt from the warehouse;
- concurrency 1 (faust-streaming #606: with concurrency > 1 an unacked message at the head can be
  committed past); acks are in offset order, Faust commits the highest contiguous acked offset;
- the dedup does not depend on the batch boundaries (Faust cuts batches by time): the tokens cover
  re-sending the same batch, the ids restored from the warehouse cover a batch cut differently;
- least privilege: the worker principal, no leader topic, no tables or changelogs, no topic declared, no
  web server: the same ACLs as the Kafka runner (its consumer group and the three topics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.dead_letter_topic import dead_letters_for_topic
from pipelines.kernel import RawRecord
from pipelines.rebalance_refresh import partition_of_unit, refresh_after_rebalance
from pipelines.warehouse_sink import WarehouseSink
from xpcore.errors import TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pipelines.processor import BatchOutput
    from pipelines.stream_report import StreamReport
    from pipelines.worker_setup import StopFlag, WorkerParts
    from xpcore.config import StreamSettings

__all__ = ["FaustRunner", "faust_app", "partition_of_unit", "raw_record"]

logger = logging.getLogger(__name__)

_new_tuple = tuple.__new__
_CHECK_EVERY = 0.2
"""Seconds between two looks at the stop flag and the idle/drained condition."""


def raw_record(event: Any) -> RawRecord:
    """A Faust event's record (its Kafka timestamp back in integer ms, None when the broker has none)."""
    message = event.message
    stamp = message.timestamp
    millis = round(stamp * 1000) if stamp is not None and stamp >= 0 else None
    return _new_tuple(
        RawRecord, (message.topic, message.partition, message.offset, message.key, message.value, millis)
    )


def faust_credentials(settings: StreamSettings, role: str) -> Any:
    """Faust's broker credentials for ``role`` from the same settings as the other clients."""
    import faust

    config = settings.aiokafka_config(role)
    if config.get("sasl_mechanism"):
        return faust.SASLCredentials(
            username=config.get("sasl_plain_username"),
            password=config.get("sasl_plain_password"),
            mechanism=config["sasl_mechanism"],
            ssl_context=config.get("ssl_context"),
        )
    if config.get("ssl_context") is not None:
        return faust.SSLCredentials(config["ssl_context"])
    return None


def faust_app(settings: StreamSettings) -> Any:
    """The worker's Faust app: the stream group as its id, the worker principal, nothing declared."""
    import faust

    brokers = [
        f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",") if server.strip()
    ]
    return faust.App(
        settings.stream_group_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings, "worker"),
        autodiscover=False,
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,  # the topics exist (`xp` creates them); the worker may not create any
        topic_disable_leader=True,  # no <app>-__assignor-__leader topic: no ACL to create it
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.stream_session_timeout_seconds,
        stream_wait_empty=False,
        producer_max_request_size=max(settings.max_record_bytes * 2, 1_048_576),
    )


class FaustRunner:
    """One group member as a Faust app; :meth:`run` returns when stopped, or drained and idle."""

    def __init__(
        self,
        parts: WorkerParts,
        stop: StopFlag,
        report: StreamReport,
        *,
        until_idle: float | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        settings = parts.settings
        self.parts, self.settings, self.stop, self.report = parts, settings, stop, report
        self.until_idle, self.on_ready = until_idle, on_ready
        self.sink = WarehouseSink(
            parts.warehouse,
            report=report,
            stopping=lambda: stop.requested,
            retry_max_seconds=settings.stream_insert_retry_max_seconds,
            overlap=False,  # one batch at a time: the next is fetched by Faust meanwhile
            metrics=parts.metrics,
        )
        self.producer: Any = None
        self.failure: BaseException | None = None
        self.first_batch_at: float | None = None
        self.last_activity = time.monotonic()
        self.assigned: set[Any] = set()
        """The partitions this member holds (Faust ``TP``s); events of others are not loaded."""
        self.assigned_before = False
        self.rebalancing = False

    def run(self) -> None:
        from xpcore.kafka.clients import make_producer

        self.producer = make_producer(self.settings, role="worker")
        try:
            asyncio.run(self._main())
        finally:
            self.producer.flush(10)
        if self.failure is not None:
            raise self.failure

    async def _main(self) -> None:
        settings, topics = self.settings, self.parts.topics
        app = faust_app(settings)
        channel = app.topic(
            *topics.subscribed, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        batch = asyncio.Lock()  # one batch (load, ack, commit) or one idle release of held events at a time
        stopping = False

        async def load_batches(stream: Any) -> None:
            try:
                async for taken in stream.noack_take(
                    settings.stream_batch_size, within=settings.stream_batch_wait_seconds
                ):
                    async with batch:
                        if stopping or self.failure is not None:
                            continue  # not loaded, not acked: the next run reads them
                        # Taken before a rebalance moved their partition away: the new owner reads them.
                        events = [e for e in taken if e.message.tp in self.assigned]
                        if not events:
                            continue
                        await asyncio.to_thread(self._load, events)
                        for event in events:  # only now: the batch is in the warehouse
                            event.ack()
                        await app.consumer.commit()
                        self.last_activity = time.monotonic()
            except Exception as error:  # no ack: the group resumes at the last commit
                logger.error("Faust runner stopping: %s", error)
                self.failure = error

        held: set[int] = set()  # partitions of the events topic held before the rebalance

        async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
            # The batch being loaded is finished (loaded, acked, committed) before the partitions go,
            # and no other starts until the new assignment is known (released in on_assigned).
            if not self.rebalancing:
                await batch.acquire()
                self.rebalancing = True
                held.clear()
                held.update(tp.partition for tp in self.assigned if tp.topic == topics.events)
            self.assigned = set()

        async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
            try:
                # Every assignment, the first included (the state restored at start is older than it):
                # the events of units on partitions held no more are dropped, and for the partitions
                # another worker held, what it loaded (and did not commit) joins the state (0094).
                owned = {tp.partition for tp in assigned if tp.topic == topics.events}
                if owned != held or not self.assigned_before:
                    counts = await asyncio.to_thread(self._refresh_state, owned - held, owned)
                    logger.info("rebalance: state refreshed from the warehouse %s", counts)
                self.assigned = set(assigned)
                self.assigned_before = True
                logger.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
            except Exception as error:
                logger.error("Faust runner stopping: %s", error)
                self.failure = error
            finally:
                if self.rebalancing:
                    self.rebalancing = False
                    batch.release()

        app.on_partitions_revoked.connect(on_revoked)
        app.on_partitions_assigned.connect(on_assigned)
        app.agent(channel, name="xp-stream-load", concurrency=1)(load_batches)
        await app.start()
        try:
            if self.on_ready is not None:
                self.on_ready()
            while not await self._should_stop(batch):
                await asyncio.sleep(_CHECK_EVERY)
            stopping = True
            async with batch:  # the batch being loaded is finished, acked and committed
                if self.failure is None:
                    await self._commit_acked(app)
        finally:
            await app.stop()

    async def _commit_acked(self, app: Any) -> None:
        """Commit what is acked (a commit already in flight is waited for first)."""
        for _ in range(2):
            await app.consumer.commit()

    async def _should_stop(self, batch: asyncio.Lock) -> bool:
        if self.stop.requested or self.failure is not None:
            return True
        idle = time.monotonic() - self.last_activity
        if idle >= 1.0 and not batch.locked():
            async with batch:
                self.parts.processor.attribution.release_expired(datetime.now(UTC))
        if self.until_idle is None or idle < self.until_idle:
            return False
        return await asyncio.to_thread(self._drained)

    def _refresh_state(self, taken: set[int], owned: set[int]) -> dict[str, int]:
        """After a rebalance: only the owned units' events stay held, and what other workers loaded
        for the ``taken`` partitions joins the state (pipelines.rebalance_refresh)."""
        return refresh_after_rebalance(self.parts, self.report, taken, owned)

    def _drained(self) -> bool:
        """The group has committed up to the end of every partition of the three topics (the Faust
        consumer's own positions are not public: the committed offsets are what a restart resumes from)."""
        from xpcore.kafka.group_offsets import read_group_lag

        subscribed = self.parts.topics.subscribed
        try:
            lag = read_group_lag(
                self.settings,
                self.settings.stream_group_id,
                {topic: topic for topic in subscribed},
                timeout=10,
                role="worker",
            )
        except TransientError as error:
            logger.warning("cannot read the group's lag: %s", error)
            return False
        return len(lag) == len(subscribed) and sum(lag.values()) == 0

    def _load(self, events: Sequence[Any]) -> None:
        """Process and load one batch, produce its dead letters, count it (in a thread)."""
        parts, report = self.parts, self.report
        started = time.monotonic()
        if self.first_batch_at is None:
            self.first_batch_at = started
        if parts.registry_changed():
            parts.apply_registry()
        raws = [raw_record(event) for event in events]
        converted = time.monotonic()
        report.stage_seconds["consume"] += converted - started  # Faust events into records
        output = parts.processor.process(raws, datetime.now(UTC))
        parts.processor.remember_ids(output)
        report.stage_seconds["process"] += time.monotonic() - converted
        self.sink.submit(output)
        self.sink.finish()
        committed_at = time.monotonic()
        self._produce_dead_letters(output)
        if parts.metrics is not None:
            parts.metrics.record_batch(output, parts.processor)
        report.stage_seconds["commit"] += time.monotonic() - committed_at
        report.add_batch(output, held_released_early=parts.processor.attribution.released_early)
        report.active_seconds = round(time.monotonic() - self.first_batch_at, 3)

    def _produce_dead_letters(self, output: BatchOutput) -> None:
        topics, settings = self.parts.topics, self.settings
        for key, value in dead_letters_for_topic(
            output.dead_letters, topics.inputs, settings.max_record_bytes
        ):
            self.producer.produce(topics.dead_letters, key=key, value=value)
        if self.producer.flush(settings.stream_session_timeout_seconds * 6) > 0:
            raise TransientError("dead letters could not be delivered to Kafka in time")
