"""The Flink runner (`xp stream run --runner flink`): the Flink job, and the loader of what it hands off.

The Flink job (:mod:`pipelines.flink.launcher`, SQL in :mod:`pipelines.flink.job_sql`) reads the input
topics on the JVM and writes each record, once, to the hand-off topic of its kind with its source
coordinates, in Kafka transactions committed by its checkpoints. This module's loader is a group member
(``read_committed``) of the hand-off topics and ``xp.dead-letters``: it gives each hand-off record back
its source topic, partition, offset and Kafka timestamp, runs the kernel (the same processor, so the
same verdicts, dead letters, dedup tokens and attribution as ``--runner kafka``), loads through the same
sink and commits its offsets **after** the load. Why this split: docs/decisions/0080.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.dead_letter_topic import dead_letters_for_topic
from pipelines.flink.attribution_check import AttributionCheck, RowKey, RowValue, job_rows, kernel_rows
from pipelines.flink.attribution_load import TrustedRows
from pipelines.flink.launcher import FlinkJob
from pipelines.flink.verdict_sql import OK
from pipelines.kafka_runner import raw_records
from pipelines.kernel import RawRecord
from pipelines.warehouse_sink import WarehouseSink
from xpcore.errors import TransientError
from xpcore.kafka.group_consumer import check_topics, commit_offsets, consume_batch, make_group_consumer
from xpcore.kafka.group_offsets import consumer_lag_or_none, read_group_lag
from xpcore.kafka.topics import FLINK_ATTRIBUTIONS, FLINK_EVENTS, FLINK_EXPOSURES

if TYPE_CHECKING:
    from pipelines.flink.settings import FlinkSettings
    from pipelines.stream_report import StreamReport
    from pipelines.worker_setup import StopFlag, WorkerParts

__all__ = ["FlinkRunner", "HandoffError", "compare_verdicts", "source_record"]

logger = logging.getLogger(__name__)

SOURCE_TOPIC = "xp-source-topic"
SOURCE_PARTITION = "xp-source-partition"
SOURCE_OFFSET = "xp-source-offset"
VERDICT = "xp-verdict"


class HandoffError(TransientError):
    """A hand-off record without a valid source (only the Flink job writes those topics)."""


def compare_verdicts(
    verdicts: dict[tuple[str, int, int], str], dead_letters: list[Any], counts: Counter[str]
) -> list[str]:
    """Count the job's verdicts (source coordinates → verdict) against the kernel's dead letters of the
    same batch; return one line per disagreement (the kernel's verdict stands: it wrote the dead letters).

    ``ok`` agrees when the kernel kept the record; a reason code when the kernel dead-lettered the
    record with that reason; a reason code without a dead letter now is ``unconfirmed`` (the kernel kept
    it, or its dead letter was written before a restart and is not written twice)."""
    from pipelines.flink.verdict_sql import OK, UNDECIDED

    kernel = {
        (letter.source_topic, letter.source_partition, letter.source_offset): str(letter.reason)
        for letter in dead_letters
    }
    problems: list[str] = []
    for where, verdict in verdicts.items():
        found = kernel.get(where)
        if verdict == UNDECIDED:
            counts["undecided"] += 1
        elif (verdict == OK and found is None) or verdict == found:
            counts["agree"] += 1
        elif verdict != OK and found is None:
            counts["unconfirmed"] += 1
        else:
            counts["disagree"] += 1
            problems.append(f"{where[0]}/{where[1]}@{where[2]}: job {verdict}, kernel {found or OK}")
    return problems


def source_record(
    raw: RawRecord, headers: list[tuple[str, bytes | None]] | None, expected_topic: str
) -> RawRecord:
    """The input record a hand-off record stands for: its source topic, partition and offset from the
    headers the job wrote, key, value and Kafka timestamp as they are (the job keeps the timestamp).

    Raises :class:`HandoffError` when the headers are missing, malformed or name another topic: the
    hand-off topics are written by the Flink job alone, so that is a bug or a foreign writer, and loading
    it under made-up coordinates could collide with a real record's dead-letter id."""
    found = {
        key: value for key, value in headers or () if key in (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)
    }
    try:
        topic = (found[SOURCE_TOPIC] or b"").decode("utf-8")
        partition = int((found[SOURCE_PARTITION] or b"").decode("ascii"))
        offset = int((found[SOURCE_OFFSET] or b"").decode("ascii"))
    except (KeyError, ValueError, UnicodeDecodeError) as error:
        raise HandoffError(
            f"hand-off record {raw.topic}/{raw.partition}@{raw.offset} has no valid source headers "
            f"({error!r}): only the Flink job may write the hand-off topics"
        ) from None
    if topic != expected_topic or partition < 0 or offset < 0:
        raise HandoffError(
            f"hand-off record {raw.topic}/{raw.partition}@{raw.offset} names source "
            f"{topic!r}/{partition}@{offset}, expected a record of {expected_topic!r}"
        )
    return RawRecord(topic, partition, offset, raw.key, raw.value, raw.timestamp_ms)


class FlinkRunner:
    """Starts the Flink job and loads what it hands off; :meth:`run` returns when stopped, or drained."""

    def __init__(
        self,
        parts: WorkerParts,
        settings: FlinkSettings,
        stop: StopFlag,
        report: StreamReport,
        *,
        until_idle: float | None = None,
    ) -> None:
        self.parts, self.settings, self.stop, self.report = parts, settings, stop, report
        self.until_idle = until_idle
        self.sink = WarehouseSink(
            parts.warehouse,
            report=report,
            stopping=lambda: stop.requested,
            retry_max_seconds=settings.stream_insert_retry_max_seconds,
            metrics=parts.metrics,
        )
        topics = parts.topics
        self.handoff = {
            settings.topic(FLINK_EXPOSURES): topics.exposures,
            settings.topic(FLINK_EVENTS): topics.events,
        }
        self.subscribed = [*self.handoff, topics.dead_letters]
        self.attributions_topic: str | None = None
        if settings.flink_jvm_attribution:  # the job's attribution rows, checked against the kernel's
            self.attributions_topic = settings.topic(FLINK_ATTRIBUTIONS)
            self.subscribed.append(self.attributions_topic)
        self.check = AttributionCheck(report.attributions)
        self.job_rows: list[tuple[RowKey, RowValue]] = []
        self.trust = self.attributions_topic is not None and settings.flink_attribution == "trust"
        """Decision 0105: the job's rows are the ones loaded; the kernel attributes only the events the
        job did not judge ``ok``."""
        self.trusted = TrustedRows(self.attributions_topic or "", parts, report)
        processor = parts.processor
        self.job = (
            FlinkJob(settings, processor.rules, processor.registry.attribution_windows)
            if settings.flink_local_job
            else None
        )
        self.consumer: Any = None
        self.producer: Any = None
        self.assigned: list[Any] = []
        self.pending: dict[tuple[str, int], int] = {}
        self.first_batch_at: float | None = None

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = list(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = []
        revoked = {(p.topic, p.partition) for p in partitions}
        self.pending = {tp: offset for tp, offset in self.pending.items() if tp not in revoked}

    def _raws(self, messages: list[Any]) -> tuple[list[RawRecord], dict[tuple[str, int, int], str]]:
        """The input records the batch stands for, and the job's verdict of each (by source); the job's
        attribution rows in the batch go to :attr:`job_rows`."""
        good = [message for message in messages if message.error() is None]
        self.job_rows = []
        self.trusted.table = None
        if self.attributions_topic is not None:
            topic = self.attributions_topic
            ours = [message for message in good if message.topic() == topic]
            rows = [message.value() for message in ours]
            if rows:
                good = [message for message in good if message.topic() != topic]
                messages = [message for message in messages if message.topic() != topic]
                if self.trust:
                    self.trusted.read(ours, self.consumer)
                else:
                    try:
                        self.job_rows = job_rows(rows)
                    except (ValueError, KeyError, TypeError) as error:
                        raise HandoffError(
                            f"a record of {topic} is not an attribution row: {error!r}"
                        ) from None
        raws = raw_records(messages)  # one per error-free message, in order
        handoff = self.handoff
        out: list[RawRecord] = []
        verdicts: dict[tuple[str, int, int], str] = {}
        for raw, message in zip(raws, good, strict=True):
            if raw.topic not in handoff:
                out.append(raw)
                continue
            headers = message.headers()
            record = source_record(raw, headers, handoff[raw.topic])
            out.append(record)
            verdict = next((value for key, value in headers or () if key == VERDICT), None)
            if verdict is not None:
                verdicts[(record.topic, record.partition, record.offset)] = verdict.decode("ascii", "replace")
        return out, verdicts

    def _commit(self, within: float) -> bool:
        if not self.pending:
            return True
        if commit_offsets(
            self.consumer,
            self.pending,
            within=within,
            max_delay=self.settings.stream_insert_retry_max_seconds,
        ):
            self.pending = {}
            return True
        return False

    def _positions(self) -> None:
        """The consumer's positions, to commit. The positions, not the last offsets + 1: with
        read_committed a position moves past the transaction markers, so a committed position never
        leaves a lag of one marker."""
        for tp in self.consumer.position(self.assigned):
            if tp.offset >= 0:
                self.pending[(tp.topic, tp.partition)] = tp.offset

    def _loaded(self, output: Any) -> None:
        """The batch is in the warehouse: dead letters out, the consumer's positions committed, counted."""
        settings, topics = self.settings, self.parts.topics
        committed_at = time.monotonic()
        for key, value in dead_letters_for_topic(
            output.dead_letters, topics.inputs, settings.max_record_bytes
        ):
            self.producer.produce(topics.dead_letters, key=key, value=value)
        if self.producer.flush(settings.stream_session_timeout_seconds * 6) > 0:
            raise TransientError("dead letters could not be delivered to Kafka in time")
        self._positions()
        self._commit(within=settings.stream_session_timeout_seconds * 2)
        self.report.stage_seconds["commit"] += time.monotonic() - committed_at
        assert self.first_batch_at is not None
        self.report.active_seconds = round(time.monotonic() - self.first_batch_at, 3)
        self.report.add_batch(output, held_released_early=self.parts.processor.attribution.released_early)

    def _drained(self) -> bool:
        """The job's source group has committed the end of every input partition (a checkpoint committed
        those records' transaction) and the loader holds no lag on the hand-off topics."""
        topics = self.parts.topics
        try:
            lag = read_group_lag(
                self.settings,
                f"{self.settings.stream_group_id}-flink",
                {"exposures": topics.exposures, "events": topics.events},
                timeout=5,
                role="worker",
            )
        except TransientError:
            return False
        if sum(lag.values()) != 0 or len(lag) != 2:
            return False
        if not self.assigned:
            return False
        return consumer_lag_or_none(self.consumer, self.assigned) == 0

    def _check_job(self) -> None:
        if self.job is not None and not self.job.alive():
            raise TransientError(
                f"the Flink job exited with code {self.job.exit_code()}; "
                f"its log ({self.job.log_path}) ends:\n{self.job.log_tail()}"
            )

    def run(self) -> None:
        from xpcore.kafka.clients import make_producer

        settings, parts, report = self.settings, self.parts, self.report
        processor = parts.processor
        try:
            if self.job is not None:
                self.job.start()
            self.producer = make_producer(settings, role="worker")
            self.consumer = make_group_consumer(
                settings,
                f"{settings.stream_group_id}-flink-loader",
                role="worker",
                session_timeout_seconds=settings.stream_session_timeout_seconds,
                **{"isolation.level": "read_committed"},
            )
            check_topics(self.consumer, settings.kafka_bootstrap, self.subscribed)
            self.consumer.subscribe(self.subscribed, on_assign=self._on_assign, on_revoke=self._on_revoke)
            last_activity = time.monotonic()
            drained_since: float | None = None
            # Drained must hold this long (a checkpoint commits the transaction and the source offsets
            # separately): more than one checkpoint interval with nothing new.
            settle = settings.flink_checkpoint_interval_seconds + 1.0
            while not self.stop.requested:
                self._check_job()
                consume_started = time.monotonic()
                messages = consume_batch(
                    self.consumer,
                    settings.stream_batch_size,
                    settings.stream_batch_wait_seconds,
                    settings.stream_batch_max_bytes,
                )
                received = time.monotonic()
                raws, verdicts = self._raws(messages)
                if self.job_rows:
                    self.check.add_job(self.job_rows)
                if parts.registry_changed():
                    parts.apply_registry()
                    if self.job is not None:  # a new job when its lists (or metric windows) changed
                        self.job.follow(processor.rules, processor.registry.attribution_windows)
                now = datetime.now(UTC)
                if not raws and not self.trusted.rows():
                    processor.attribution.release_expired(now)
                    if self.job_rows:  # only attribution rows: their positions are committed too
                        self._positions()
                    if self.pending and not self._commit(within=1.0):
                        continue
                    idle = time.monotonic() - last_activity
                    if self.until_idle is not None and idle >= self.until_idle and self._drained():
                        if drained_since is None:
                            drained_since = time.monotonic()
                        elif time.monotonic() - drained_since >= settle:
                            break
                    else:
                        drained_since = None
                    continue
                drained_since = None
                last_activity = time.monotonic()
                if self.first_batch_at is None:
                    self.first_batch_at = received
                report.stage_seconds["consume"] += last_activity - consume_started
                if self.trust:
                    elsewhere = {where for where, verdict in verdicts.items() if verdict == OK}
                    output = self.trusted.add_to(processor.process(raws, now, elsewhere))
                else:
                    output = processor.process(raws, now)
                processor.remember_ids(output)
                if self.attributions_topic is not None and not self.trust:
                    self.check.add_kernel(kernel_rows(output.attributed))
                for problem in compare_verdicts(verdicts, output.dead_letters, report.verdicts)[:5]:
                    logger.warning("the job's verdict is not the kernel's (the kernel's stands): %s", problem)
                report.stage_seconds["process"] += time.monotonic() - last_activity
                self.sink.submit(output)
                loaded = self.sink.finish()
                if loaded is not None:
                    self._loaded(loaded)
            if self.pending and not self._commit(within=settings.stream_session_timeout_seconds * 2):
                raise TransientError("stopped while offsets could not be committed (the batches are loaded)")
            self.check.finish()
        finally:
            self.sink.close()
            if self.job is not None:
                self.job.stop()
            if self.consumer is not None:
                self.consumer.close()
                # It holds our rebalance callbacks (a cycle through this runner): dropped, the worker's
                # state goes by reference counting when the run ends, not by a collection of the whole
                # heap (0.65 s at 100 k units at interpreter exit).
                self.consumer = None
            if self.producer is not None:
                self.producer.flush(10)


def run_flink_worker(settings: FlinkSettings, *, until_idle: float | None = None) -> StreamReport:
    """`xp stream run --runner flink`: set up and restore like every runner, then the Flink runner."""
    import signal

    from pipelines.stream_report import StreamReport
    from pipelines.worker_setup import StopFlag, restore_from_warehouse, set_up_worker

    started = time.monotonic()
    report = StreamReport()
    stop = StopFlag(None)
    previous = stop.install()
    try:
        parts = set_up_worker(settings)
        try:
            # Trust mode (decision 0105): the job holds the events it attributes (its state comes from its
            # checkpoint); the kernel holds only what it attributes, and nothing from the warehouse.
            trusting = settings.flink_jvm_attribution and settings.flink_attribution == "trust"
            restore_from_warehouse(parts, report, hold_events=not trusting)
            FlinkRunner(parts, settings, stop, report, until_idle=until_idle).run()
        finally:
            parts.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        report.seconds = round(time.monotonic() - started, 3)
    logger.info("flink runner finished %s", report.as_dict())
    return report
