"""The stream worker on confluent-kafka: Kafka → kernel → warehouse, offsets committed after the load.

One consumer in the group ``XP_STREAM_GROUP_ID`` subscribes to ``xp.exposures`` and ``xp.events`` with
the *range* assignor, so co-partitioned partitions (same number, same unit ids) land on the same worker.
Per batch (``consume(n, timeout)``): :class:`~pipelines.processor.StreamProcessor` → inserts into
``xp.exposures``, ``xp.events``, ``xp.attributed_events``, ``xp.dead_letters`` (each with a deterministic
dedup token) → dead letters produced to ``xp.dead-letters`` and flushed → offsets committed
synchronously → ids remembered. A transient warehouse error pauses consumption and retries the same
insert with the same token (backpressure; nothing is lost or doubled). Why not Faust: docs/pipeline.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import methodcaller
from typing import TYPE_CHECKING, Any

from pipelines.attribution import AttributionState
from pipelines.gc_pacing import PacedCollector
from pipelines.kernel import RawRecord, ValidationRules
from pipelines.metrics import StreamMetrics
from pipelines.overlap import OneInFlight
from pipelines.processor import BatchOutput, RegistryView, StreamProcessor
from pipelines.state import known_event_names, registry_view_from_file, restore_state
from xpcore.errors import ConfigError, TransientError, XpError

if TYPE_CHECKING:
    from collections.abc import Callable

    from xpcore.config import StreamSettings
    from xpcore.warehouse.base import Warehouse

__all__ = ["StreamReport", "run_worker"]

logger = logging.getLogger(__name__)


@dataclass
class StreamReport:
    """What one worker run did (``xp stream run --format json`` prints it)."""

    consumed: int = 0
    exposures: int = 0
    events: int = 0
    attributed: int = 0
    dead_letters: int = 0
    """Rows loaded into xp.dead_letters: the stream's rejects and the collector's (read from its topic)."""
    dead_letter_topic_records: int = 0
    """Records read from the dead-letter topic (not in ``consumed``)."""
    duplicates: int = 0
    batches: int = 0
    insert_retries: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    restored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    active_seconds: float = 0.0
    """From the moment the first non-empty batch was in hand to the last commit, or to the garbage collection
    right after it (throughput = consumed / this; the wait for the group join and the first fetch is not
    counted, as in the raw-consumer baseline)."""
    stage_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Time per stage over non-empty batches: consume, process (kernel), load (inserts), load_wait (the part
    of the inserts the worker waited for: all of it unless XP_STREAM_OVERLAP_LOAD), commit, gc (garbage
    collections between batches, :mod:`pipelines.gc_pacing`)."""

    def as_dict(self) -> dict[str, Any]:
        stages = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        return {**self.__dict__, "reasons": dict(self.reasons), "stage_seconds": stages}


class _Stop:
    def __init__(self, event: threading.Event | None = None) -> None:
        self._requested = False
        self._event = event

    @property
    def requested(self) -> bool:
        return self._requested or (self._event is not None and self._event.is_set())

    def __call__(self, signum: int, frame: object) -> None:
        logger.info("signal %s: stopping after the current batch", signum)
        self._requested = True


def _registry(settings: StreamSettings) -> tuple[RegistryView, Any]:
    """The registry view and, when following ``xp.registry``, the follower (to refresh and stop)."""
    if settings.stream_registry_file is not None:
        return registry_view_from_file(settings.stream_registry_file), None
    try:
        from assignment.registry_topic import RegistryFollower
    except ImportError:
        logger.warning("registry reader not available: experiments and variations are not checked")
        return RegistryView(None), None
    follower = RegistryFollower(settings, start_timeout=settings.stream_registry_timeout)
    if not follower.start():
        # An empty snapshot would dead-letter every exposure as unknown_experiment: refuse to start.
        error = follower.last_error or "no error reported"
        follower.stop()
        raise TransientError(
            f"registry topic {settings.topic('xp.registry')} not read within "
            f"{settings.stream_registry_timeout:g}s ({error})"
        )
    return RegistryView.from_snapshot(follower.snapshot), follower


def _store_registry_history(warehouse: Warehouse, settings: StreamSettings) -> None:
    """Copy registry changes into ``xp.registry`` (the audit history that survives compaction).

    Best effort: the registry table is history, not input, so a failure is logged and retried at the
    next registry change instead of stopping the stream.
    """
    from assignment.registry_topic import read_registry_records
    from pipelines.registry_history import store_registry_history

    try:
        records = read_registry_records(settings, timeout=settings.stream_registry_timeout)
        store_registry_history(warehouse, records)
    except XpError as error:
        logger.warning("registry history not stored this time: %s", error)


_new_tuple = tuple.__new__


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


def _raws(messages: list[Any]) -> list[RawRecord]:
    """The batch's records (Kafka timestamps kept as integer ms); errors other than EOF logged or raised.

    Per message: five C getters and one tuple (``RawRecord`` is a NamedTuple built with ``tuple.__new__``,
    no Python-level ``__init__``): this loop runs for every record, so it stays this small.
    """
    from confluent_kafka import KafkaError

    raws: list[RawRecord] = []
    append = raws.append
    for message in messages:
        error = message.error()
        if error is None:
            kind, millis = message.timestamp()
            append(
                _new_tuple(
                    RawRecord,
                    (
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        millis if kind != 0 and millis >= 0 else None,
                    ),
                )
            )
        elif error.code() != KafkaError._PARTITION_EOF:
            if error.fatal():
                raise TransientError(f"Kafka consumer failed: {error}")
            if error.code() in _REFUSALS:  # retrying cannot help: stop with the one line that says why
                raise ConfigError(
                    f"Kafka refused the stream worker ({error.name()}: {error.str()}): its principal needs "
                    "the ACLs of docs/operations.md#kafka-security (its consumer group must start with "
                    "'xp-' or the topic prefix)"
                )
            logger.warning("Kafka consume error: %s", error)
    return raws


_FETCH_MAX_BYTES = 16 * 1024 * 1024
"""librdkafka's ``fetch.max.bytes`` and ``queued.max.messages.kbytes`` of the worker (defaults: 50 MiB and
64 MiB). Both count compressed bytes: they bound the prefetch queue, not what it decompresses to."""
_CHUNK = 500
"""Messages taken from the consumer per call while a batch fills (the byte budget is checked between)."""
_value = methodcaller("value")


def _consume_batch(consumer: Any, count: int, timeout: float, max_bytes: int) -> list[Any]:
    """Up to ``count`` messages within ``timeout`` s (as one ``consume(count, timeout)``), but no more once
    their values hold ``max_bytes``: taken ``_CHUNK`` at a time, the budget checked after each chunk, so a
    batch holds at most ``max_bytes`` plus one chunk (docs/decisions/0035)."""
    deadline = time.monotonic() + timeout
    asked = min(count, _CHUNK)
    messages: list[Any] = consumer.consume(num_messages=asked, timeout=timeout)
    chunk = messages
    held = 0
    while len(chunk) == asked and len(messages) < count:  # a short chunk: the wait ran out
        try:
            held += sum(map(len, map(_value, chunk)))
        except TypeError:  # a value-less message (tombstone, error): counted as empty
            held += sum(len(message.value() or b"") for message in chunk)
        if held >= max_bytes:
            break
        asked = min(count - len(messages), _CHUNK)
        chunk = consumer.consume(num_messages=asked, timeout=max(0.0, deadline - time.monotonic()))
        messages.extend(chunk)
    return messages


def _load(
    warehouse: Warehouse,
    output: BatchOutput,
    settings: StreamSettings,
    report: StreamReport,
    stop: _Stop,
    metrics: StreamMetrics | None = None,
) -> None:
    """Insert every table of the batch; transient errors are retried with the same token, forever."""
    from schemas import DeadLetter
    from schemas.arrow import to_arrow

    work = [
        ("xp.exposures", output.exposures),
        ("xp.events", output.events),
        ("xp.attributed_events", output.attributed),
        ("xp.dead_letters", to_arrow(output.dead_letters, DeadLetter)),
    ]
    for table, data in work:
        if data.num_rows == 0:
            continue
        delay = 0.5
        while True:
            try:
                began = time.monotonic()
                warehouse.insert_arrow(table, data, dedup_token=output.tokens[table])
                if metrics is not None:
                    metrics.insert_seconds.labels(table).observe(time.monotonic() - began)
                break
            except TransientError as error:
                report.insert_retries += 1
                if metrics is not None:
                    metrics.insert_retries.inc()
                logger.warning("insert into %s failed (%s); retrying in %.1fs", table, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, settings.stream_insert_retry_max_seconds)
                if stop.requested:
                    raise TransientError(f"stopped while the warehouse was failing: {error}") from error


def _timed_load(
    warehouse: Warehouse,
    output: BatchOutput,
    settings: StreamSettings,
    report: StreamReport,
    stop: _Stop,
    metrics: StreamMetrics | None,
) -> float:
    """:func:`_load`, returning the seconds it took (run in the loader thread)."""
    began = time.monotonic()
    _load(warehouse, output, settings, report, stop, metrics)
    return time.monotonic() - began


def _check_topics(consumer: Any, settings: StreamSettings, topics: list[str]) -> None:
    """Fail with one clear line when Kafka is unreachable or a topic is missing (never wait forever)."""
    from confluent_kafka import KafkaException

    from xpcore.errors import ConfigError

    try:
        metadata = consumer.list_topics(timeout=15)
    except KafkaException as error:
        raise TransientError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {error}") from error
    missing = [topic for topic in topics if topic not in metadata.topics]
    if missing:
        raise ConfigError(
            f"topic {missing[0]} does not exist on {settings.kafka_bootstrap}: run `xp stack up`"
        )


def _lag(consumer: Any, partitions: list[Any]) -> int:
    """Records not yet consumed on ``partitions`` (0 when drained); position, else the group's commit."""
    if not partitions:
        raise _LagUnknown("no partitions")
    positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(partitions)}
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=10)}
    total = 0
    for tp in partitions:
        low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        if low < 0 or high < 0:  # not known right now (leader moving, broker restarting)
            raise _LagUnknown(f"watermarks of {tp.topic}/{tp.partition} unknown")
        at = positions.get((tp.topic, tp.partition), -1)
        if at < 0:
            at = committed.get((tp.topic, tp.partition), -1)
        if at < 0:
            at = low
        total += max(0, high - at)
    return total


class _LagUnknown(Exception):
    pass


def _all_partitions(consumer: Any, topics: list[str]) -> list[Any]:
    """Every partition of ``topics`` (empty when metadata is unavailable: never "drained" then)."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(timeout=10)
    except KafkaException:
        return []
    return [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in metadata.topics
        for partition in metadata.topics[topic].partitions
    ]


def _lag_or_none(consumer: Any, partitions: list[Any]) -> int | None:
    """The lag, or None when the broker cannot say right now (e.g. restarting)."""
    from confluent_kafka import KafkaException

    try:
        return _lag(consumer, partitions)
    except (KafkaException, _LagUnknown) as error:
        logger.warning("cannot read consumer lag: %s", error)
        return None


_REBALANCED = ("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "_NO_OFFSET")


def _commit(consumer: Any, offsets: list[Any], settings: StreamSettings, *, within: float) -> bool:
    """Commit synchronously; True once done (or moot after a rebalance), False if not done ``within`` s.

    Retries while the broker or the group coordinator is unavailable, but only for ``within`` seconds:
    the caller then keeps the offsets pending and goes back to ``consume``, which is what lets
    librdkafka finish what the outage started (serve the rebalance, rejoin the group, find the new
    coordinator). Spinning here without polling can wait for the coordinator forever (seen after a
    broker restart on a loaded machine). Giving up is safe: the batch is loaded, so a re-delivery of
    its records is deduplicated (ids, tokens); the pending offsets go out with the next commit.
    After a rebalance the partitions may belong to another worker: it re-reads from the last commit,
    and retrying a commit with a stale generation never succeeds, so that case returns True at once.
    """
    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + within
    delay = 0.5
    while True:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
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
            delay = min(delay * 2, settings.stream_insert_retry_max_seconds)


def run_worker(
    settings: StreamSettings,
    *,
    until_idle: float | None = None,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> StreamReport:
    """Run the worker until SIGTERM/SIGINT or, with ``until_idle``, until drained and idle that long.

    ``stop_event``: run in any thread and stop (after the current batch) when it is set; no signal
    handlers are installed then (`xp up` runs the worker in a thread and handles signals itself).
    ``on_ready``: called once the state is restored from the warehouse and the consumer exists (`xp up`
    reports the stream healthy only from then on).
    """
    from confluent_kafka import TopicPartition

    from xpcore.kafka import DEAD_LETTERS, EVENTS, EXPOSURES
    from xpcore.kafka.clients import make_consumer, make_producer
    from xpcore.warehouse import open_warehouse

    started = time.monotonic()
    report = StreamReport()
    stop = _Stop(stop_event)
    signals = (signal.SIGTERM, signal.SIGINT) if stop_event is None else ()
    previous = {sig: signal.signal(sig, stop) for sig in signals}
    registry, follower = _registry(settings)
    exposures_topic, events_topic = settings.topic(EXPOSURES), settings.topic(EVENTS)
    dead_letters_topic = settings.topic(DEAD_LETTERS)
    # The dead-letter topic too: the collector's dead letters reach xp.dead_letters through the worker.
    topics = [exposures_topic, events_topic, dead_letters_topic]
    processor = StreamProcessor(
        exposures_topic=exposures_topic,
        events_topic=events_topic,
        rules=ValidationRules(
            max_future_skew=timedelta(seconds=settings.stream_max_future_skew_seconds),
            max_lateness=timedelta(seconds=settings.stream_max_lateness_seconds),
            known_event_names=known_event_names(settings),
            known_variations=registry.known_variations,
        ),
        registry=registry,
        attribution=AttributionState(
            default_window=timedelta(seconds=settings.stream_attribution_window_seconds),
            hold=timedelta(seconds=settings.stream_hold_seconds),
            max_held=settings.stream_max_held_events,
        ),
        dedup_retention=timedelta(seconds=settings.stream_dedup_retention_seconds),
        dedup_max_ids=settings.stream_dedup_max_ids,
        max_record_bytes=settings.max_record_bytes,
        max_abs_metric_value=settings.max_abs_metric_value,
        dead_letters_topic=dead_letters_topic,
    )
    processor.set_registry(registry)
    snapshot = follower.snapshot if follower is not None else None
    metrics: StreamMetrics | None = None
    if settings.stream_metrics_port is not None:
        metrics = StreamMetrics()
        metrics.serve(settings.stream_metrics_port)
    warehouse = open_warehouse(settings)
    loads = OneInFlight("xp-stream-load")
    # The garbage collector paced by batches while the worker is behind, when it owns the process (not
    # inside `xp up`); automatic while it keeps up (pipelines/gc_pacing.py).
    collector = PacedCollector(enabled=stop_event is None)
    consumer = producer = None
    try:
        if follower is not None:
            _store_registry_history(warehouse, settings)
        report.restored = restore_state(processor, warehouse, settings, datetime.now(UTC))
        # Events restored after a crash between the events insert and the attribution insert.
        pending = processor.attribution.attribute_held()
        if pending:
            from pipelines.processor import attributions_table

            warehouse.insert_arrow("xp.attributed_events", attributions_table(pending))
            report.attributed += len(pending)
        producer = make_producer(settings, role="worker")

        def new_consumer() -> Any:
            return make_consumer(
                settings,
                settings.stream_group_id,
                role="worker",
                **{
                    "partition.assignment.strategy": "range",
                    "fetch.wait.max.ms": 100,
                    # Bounds on what librdkafka fetches and queues ahead (counted before decompression:
                    # the byte budget of a batch, _consume_batch, bounds what the worker holds after it).
                    "max.partition.fetch.bytes": 4 * 1024 * 1024,
                    "fetch.max.bytes": _FETCH_MAX_BYTES,
                    "receive.message.max.bytes": _FETCH_MAX_BYTES + 1024 * 1024,
                    "queued.max.messages.kbytes": _FETCH_MAX_BYTES // 1024,
                    "session.timeout.ms": int(settings.stream_session_timeout_seconds * 1000),
                    "heartbeat.interval.ms": int(settings.stream_session_timeout_seconds * 1000 / 5),
                },
            )

        consumer = new_consumer()
        if on_ready is not None:
            on_ready()
        assigned: list[Any] = []
        # Offsets of loaded batches whose commit has not gone through yet (the broker or the group
        # coordinator unavailable): (topic, partition) → next offset. Committed with the next batch or
        # while idle; dropped on revoke (the records they cover are loaded: a re-delivery is deduplicated).
        uncommitted: dict[tuple[str, int], int] = {}
        commit_within = settings.stream_session_timeout_seconds * 2
        # Commits failing this long (while consuming on): the consumer is re-created and rejoins the group.
        rejoin_after = max(60.0, settings.stream_session_timeout_seconds * 6)
        failing_since: list[float] = []

        def commit_pending(within: float) -> bool:
            nonlocal consumer
            if not uncommitted:
                return True
            offsets = [TopicPartition(topic, p, offset) for (topic, p), offset in uncommitted.items()]
            if _commit(consumer, offsets, settings, within=within):
                uncommitted.clear()
                failing_since.clear()
                return True
            if not failing_since:
                failing_since.append(time.monotonic())
            elif time.monotonic() - failing_since[0] > rejoin_after:
                # Last resort: a fresh consumer finds the coordinator and rejoins; it resumes from the
                # group's last commit, and what it re-reads of the loaded batches is deduplicated.
                logger.warning("offset commits failing for %.0fs: re-creating the consumer", rejoin_after)
                failing_since.clear()
                uncommitted.clear()
                assigned[:] = []
                old, consumer = consumer, None
                try:
                    if old is not None:
                        old.close()
                except Exception as error:  # the old consumer is broken anyway
                    logger.warning("closing the stuck consumer failed: %s", error)
                consumer = new_consumer()
                consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
            return False

        def on_assign(_consumer: Any, partitions: list[Any]) -> None:
            assigned[:] = list(partitions)
            logger.info("assigned %s", [(p.topic, p.partition) for p in partitions])

        def on_revoke(_consumer: Any, partitions: list[Any]) -> None:
            assigned[:] = []
            for p in partitions:
                uncommitted.pop((p.topic, p.partition), None)

        _check_topics(consumer, settings, topics)
        consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
        last_activity = time.monotonic()
        first_batch_at: float | None = None
        in_flight: BatchOutput | None = None

        def finish_load() -> None:
            """Wait for the batch being loaded, then dead letters out, offsets committed, report counted."""
            nonlocal in_flight
            if in_flight is None:
                return
            output, in_flight = in_flight, None
            waited = time.monotonic()
            report.stage_seconds["load"] += loads.wait()
            committed_at = time.monotonic()
            report.stage_seconds["load_wait"] += committed_at - waited
            for dead in output.dead_letters:
                if dead.source_topic not in (exposures_topic, events_topic):
                    continue  # read from the dead-letter topic: already there
                producer.produce(
                    dead_letters_topic, key=dead.original_key, value=_encode_dead_letter(dead, settings)
                )
            if producer.flush(settings.stream_session_timeout_seconds * 6) > 0:
                raise TransientError("dead letters could not be delivered to Kafka in time")
            for key, offset in output.offsets.items():
                uncommitted[key] = max(offset, uncommitted.get(key, offset))
            commit_pending(within=commit_within)
            if metrics is not None:
                _record_metrics(metrics, output, processor)
            report.stage_seconds["commit"] += time.monotonic() - committed_at
            assert first_batch_at is not None
            report.active_seconds = round(time.monotonic() - first_batch_at, 3)
            report.batches += 1
            report.consumed += output.consumed
            report.dead_letter_topic_records += output.dead_letter_topic_records
            report.exposures += output.exposures.num_rows
            report.events += output.events.num_rows
            report.attributed += output.attributed.num_rows
            report.dead_letters += len(output.dead_letters)
            report.duplicates += output.duplicates
            report.reasons.update(output.reasons)

        collector.start()
        while not stop.requested:
            consume_started = time.monotonic()
            messages = _consume_batch(
                consumer,
                settings.stream_batch_size,
                settings.stream_batch_wait_seconds,
                settings.stream_batch_max_bytes,
            )
            received = time.monotonic()
            raws = _raws(messages)
            if follower is not None and follower.snapshot is not snapshot:
                finish_load()  # the history insert below never runs beside a batch insert
                snapshot = follower.snapshot
                processor.set_registry(RegistryView.from_snapshot(snapshot))
                _store_registry_history(warehouse, settings)
            now = datetime.now(UTC)
            if not raws:
                finish_load()
                collector.when_idle()
                processor.attribution.release_expired(now)
                if uncommitted and not commit_pending(within=1.0):
                    continue  # not drained while offsets of loaded batches are uncommitted
                idle = time.monotonic() - last_activity
                if metrics is not None and assigned:
                    lag = _lag_or_none(consumer, assigned)
                    if lag is not None:
                        metrics.lag.set(lag)
                if until_idle is not None and idle >= until_idle:
                    # Without partitions (a rebalance, a broker restart, more workers than partitions)
                    # stop only once the whole group has committed up to the end of every partition.
                    if assigned:
                        if _lag_or_none(consumer, assigned) == 0:
                            break
                    elif _lag_or_none(consumer, _all_partitions(consumer, topics)) == 0:
                        break
                continue
            last_activity = time.monotonic()
            if first_batch_at is None:
                # From the first records in hand (as the raw-consumer baseline of the benches counts):
                # waiting for the group join and the first fetch is not throughput.
                first_batch_at = received
            report.stage_seconds["consume"] += last_activity - consume_started
            output = processor.process(raws, now)
            # Remember the batch's ids now, not after its load: the next batch is deduplicated against
            # them while this one loads. Safe because a load either succeeds (retried with the same
            # token) or ends the run, and a new run rebuilds the state from the warehouse.
            processor.remember_ids(output)
            report.stage_seconds["process"] += time.monotonic() - last_activity
            finish_load()  # the previous batch: its inserts ran while this one was consumed and processed
            in_flight = output
            loads.submit(_timed_load, warehouse, output, settings, report, stop, metrics)
            if not settings.stream_overlap_load:
                finish_load()
            # Release this batch's objects (reference counting frees them), then collect what survived
            # (a full batch: the worker is behind, the collector is paced); a collection is part of the
            # batch's cost (counted in the active time, as stage "gc").
            backlogged = len(messages) >= settings.stream_batch_size
            messages = raws = []
            del output
            collected_from = time.monotonic()
            if collector.after_batch(backlogged=backlogged):
                done = time.monotonic()
                report.stage_seconds["gc"] += done - collected_from
                report.active_seconds = round(done - first_batch_at, 3)
        finish_load()
        if uncommitted and not commit_pending(within=commit_within):
            raise TransientError("stopped while offsets could not be committed (the batches are loaded)")
    except XpError:
        raise
    finally:
        collector.stop()
        loads.close()  # an insert still running (after an error elsewhere) ends before the store closes
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.flush(10)
        if follower is not None:
            follower.stop()
        warehouse.close()
        report.seconds = round(time.monotonic() - started, 3)
    logger.info("stream worker finished %s", report.as_dict())
    return report


def _record_metrics(metrics: StreamMetrics, output: BatchOutput, processor: StreamProcessor) -> None:
    import numpy as np

    metrics.batches.inc()
    metrics.records.labels(processor.exposures_topic, "loaded").inc(output.exposures.num_rows)
    metrics.records.labels(processor.events_topic, "loaded").inc(output.events.num_rows)
    for topic, count in output.duplicates_by_topic.items():
        metrics.records.labels(topic, "duplicate").inc(count)
    for dead in output.dead_letters:
        metrics.records.labels(dead.source_topic, "dead_letter").inc()
        metrics.dead_letters.labels(dead.reason.value).inc()
    metrics.attributions.inc(output.attributed.num_rows)
    metrics.held_events.set(processor.attribution.held_count)
    now_ms = time.time() * 1000
    for table, column in ((output.exposures, "exposed_at"), (output.events, "occurred_at")):
        if table.num_rows:
            millis = table.column(column).cast("int64").to_numpy()
            step = max(1, len(millis) // 1000)  # a sample of at most ~1000 per batch
            for age in (now_ms - millis[::step]) / 1000.0:
                metrics.freshness.observe(float(np.maximum(age, 0.0)))


def _encode_dead_letter(dead: Any, settings: StreamSettings) -> bytes:
    """JSON of a dead letter for the topic; a too-large original is omitted there (the table keeps it)."""
    import msgspec

    data = msgspec.json.encode(dead)
    if len(data) > settings.max_record_bytes:
        dead = msgspec.structs.replace(
            dead,
            original=b"",
            detail=f"{dead.detail} (original of {len(dead.original)} bytes omitted; kept in xp.dead_letters)",
        )
        data = msgspec.json.encode(dead)
    return data
