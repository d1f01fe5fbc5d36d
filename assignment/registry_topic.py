"""The registry on Kafka: publish changes to ``xp.registry``, read it whole, follow it (an adapter).

``xp.registry`` is compacted: Kafka keeps at least the latest record of every key, so reading it from the
beginning to its end offsets and folding (:class:`assignment.registry.RegistrySnapshot`) gives the
current registry. Compaction may drop older versions of a key, so the topic's history is not complete:
the durable audit trail is the ``xp.registry`` ClickHouse table that the stream loads (docs/registry.md).

::

    publish_changes(settings, records)                 # key = record.key, value = compact JSON
    snapshot = read_registry(settings)                  # beginning → end offsets (watermarks), no group
    records = registry_history(settings, "checkout")    # what the topic still holds for that key
    follower = RegistryFollower(settings, on_change=print)
    follower.start(); follower.snapshot; follower.wait_until(lambda s: "checkout" in s.experiments)

Records are signed by the publisher (header ``xp-signature``, :mod:`xpcore.registry_signing`) and
verified by every reader: a forged or unsigned record is refused, reported once and never applied
(``follower.refused``). The publisher connects as the ``registry`` principal, readers as ``reader``.

Kafka is reached through the adapters of ``xpcore.kafka`` (``clients``, ``topic_reader``): this module
imports no Kafka client library.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assignment.registry import RegistrySnapshot
from schemas import ExperimentDefinition, RegistryRecord
from schemas.codec import RecordCodec, RecordError
from xpcore.errors import TransientError
from xpcore.kafka.principals import READER, REGISTRY_PUBLISHER
from xpcore.kafka.topic_reader import TopicReader, unreachable
from xpcore.kafka.topics import REGISTRY
from xpcore.registry_signing import (
    SIGNATURE_HEADER,
    KeyRing,
    RefusedRecord,
    load_keyring,
    refusals,
    signature_of,
)

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = [
    "RawRegistryMessage",
    "RegistryFollower",
    "publish_changes",
    "read_registry",
    "read_registry_messages",
    "read_registry_records",
    "registry_history",
    "republish_registry_messages",
]

logger = logging.getLogger(__name__)
LIBRDKAFKA_LOGGER = logging.getLogger("xpcore.kafka.librdkafka")
"""librdkafka's log lines go through Python logging (as in xpcore.kafka.admin), not raw stderr."""

OnChange = Callable[[RegistrySnapshot], None]


def publish_changes(settings: KafkaSettings, records: list[RegistryRecord], *, timeout: float = 15.0) -> None:
    """Produce ``records`` to ``xp.registry`` (creating the topics if missing) and wait until every one is
    acknowledged; TransientError when the broker does not take them within ``timeout`` seconds."""
    if not records:
        return

    keyring = load_keyring(settings, create=True)
    codec = RecordCodec(RegistryRecord, max_record_bytes=settings.max_record_bytes)
    values = [(record.key.encode(), codec.encode(record)) for record in records]
    signed = [(key, value, keyring.sign(key, value)) for key, value in values]
    produce_registry_records(
        settings,
        [{"key": key, "value": value, "headers": [(SIGNATURE_HEADER, sig)]} for key, value, sig in signed],
        timeout=timeout,
        doing="publishing to",
    )
    logger.info(
        "published registry changes", extra={"topic": settings.topic(REGISTRY), "count": len(records)}
    )


def _client_logging(one_shot: bool) -> dict[str, Any]:
    """librdkafka logs through Python logging; one-shot reads/publishes report failures themselves, so
    they keep librdkafka quiet (its connection retries would print dozens of lines) unless debugging."""
    config: dict[str, Any] = {"logger": LIBRDKAFKA_LOGGER}
    if one_shot and not LIBRDKAFKA_LOGGER.isEnabledFor(logging.DEBUG):
        config["log_level"] = 0
    return config


def _registry_reader(settings: KafkaSettings, one_shot: bool = True) -> TopicReader:
    from xpcore.kafka.clients import make_consumer

    # Partitions are assigned, never subscribed: the group id only satisfies librdkafka; nothing commits.
    consumer = make_consumer(
        settings,
        f"xp-registry-reader-{uuid.uuid4().hex[:12]}",
        role=READER,
        **{"allow.auto.create.topics": False, **_client_logging(one_shot)},
    )
    return TopicReader(consumer, settings.topic(REGISTRY), settings, role=READER)


def _keyring(settings: KafkaSettings) -> KeyRing:
    """The keys that verify registry records (none: every record is refused, reason no_verification_key)."""
    return load_keyring(settings)


def _decode(codec: RecordCodec[RegistryRecord], message: Any, keyring: KeyRing) -> RegistryRecord | None:
    """The record, if authentic and valid; a forged or unsigned one is refused and reported (None)."""
    reason = keyring.verify(message.key(), message.value(), signature_of(message.headers()))
    if reason is not None:
        key = message.key()
        refusals().report(
            RefusedRecord(
                message.topic(),
                message.partition(),
                message.offset(),
                key.decode("utf-8", "replace") if key is not None else "",
                reason,
            )
        )
        return None
    try:
        return codec.decode(message.value())
    except RecordError as error:
        logger.warning(
            "skipping an invalid registry record: %s",
            error,
            extra={"topic": message.topic(), "partition": message.partition(), "offset": message.offset()},
        )
        return None


def _messages_to_end(settings: KafkaSettings, timeout: float) -> Iterator[Any]:
    """Every message ``xp.registry`` holds now (beginning → the end offsets read at the start), in offset
    order per partition; nothing if the topic is missing. TransientError past ``timeout``."""
    deadline = time.monotonic() + timeout
    topic = settings.topic(REGISTRY)
    reader = _registry_reader(settings)
    try:
        partitions = reader.partitions(timeout)
        if not partitions:
            return
        marks = reader.watermarks(partitions, max(deadline - time.monotonic(), 0.5))
        pending = {p: high for p, (low, high) in marks.items() if high > low}
        if not pending:
            return
        reader.assign({p: marks[p][0] for p in pending})
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientError(f"timed out after {timeout:g}s reading {topic} to its end offsets")
            for message in reader.consume(1000, min(left, 0.5), doing="reading"):
                partition = message.partition()
                if partition not in pending or message.offset() >= pending[partition]:
                    continue
                yield message
                if message.offset() + 1 >= pending[partition]:
                    del pending[partition]
            for partition, position in reader.positions(list(pending)):
                if position >= pending[partition]:  # compaction gaps / markers at the end
                    del pending[partition]
    finally:
        reader.close()


def read_registry_records(settings: KafkaSettings, timeout: float = 10.0) -> list[RegistryRecord]:
    """Every record ``xp.registry`` holds now (beginning → the end offsets read at the start), partition
    by partition in offset order; invalid records are logged and skipped. Empty if the topic is missing."""
    keyring = _keyring(settings)
    codec: RecordCodec[RegistryRecord] = RecordCodec(
        RegistryRecord, max_record_bytes=settings.max_record_bytes
    )
    by_partition: dict[int, list[RegistryRecord]] = {}
    for message in _messages_to_end(settings, timeout):
        record = _decode(codec, message, keyring)
        if record is not None:
            by_partition.setdefault(message.partition(), []).append(record)
    return [record for p in sorted(by_partition) for record in by_partition[p]]


@dataclass(frozen=True)
class RawRegistryMessage:
    """One record of ``xp.registry`` exactly as the topic holds it (for backups: signatures stay valid)."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def read_registry_messages(settings: KafkaSettings, timeout: float = 30.0) -> list[RawRegistryMessage]:
    """Every record ``xp.registry`` holds now, verbatim and unverified, partition by partition in offset
    order (beginning → the end offsets read at the start). Empty if the topic is missing."""
    found = []
    for message in _messages_to_end(settings, timeout):
        kind, stamp = message.timestamp()
        found.append(
            RawRegistryMessage(
                message.partition(),
                message.offset(),
                stamp if kind else None,
                message.key(),
                message.value(),
                tuple((name, value) for name, value in (message.headers() or [])),
            )
        )
    return sorted(found, key=lambda m: (m.partition, m.offset))


def produce_registry_records(
    settings: KafkaSettings, messages: list[dict[str, Any]], *, timeout: float, doing: str
) -> None:
    """Produce ``messages`` (``produce()`` keywords: key, value, headers, timestamp) to ``xp.registry`` as
    the ``registry`` principal and wait for every acknowledgement (TransientError otherwise). Creates the
    topic when missing."""
    from xpcore.kafka.clients import make_producer
    from xpcore.kafka.topics import ensure_topics

    ensure_topics(settings, timeout=timeout, topics=[REGISTRY])
    producer = make_producer(
        settings,
        role=REGISTRY_PUBLISHER,
        **{"message.timeout.ms": max(int(timeout * 1000), 1000), **_client_logging(True)},
    )
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    topic = settings.topic(REGISTRY)
    try:
        for message in messages:
            producer.produce(topic, on_delivery=delivered, **message)
            producer.poll(0)
    except BufferError as error:
        raise TransientError(f"producer queue full while {doing} {topic}: {error}") from error
    remaining = producer.flush(timeout)
    if remaining:
        raise unreachable(
            settings, f"{remaining} of {len(messages)} registry records not acknowledged", REGISTRY_PUBLISHER
        )
    if failures:
        raise TransientError(f"{doing} {topic} failed: {failures[0]}")


def republish_registry_messages(
    settings: KafkaSettings, messages: list[RawRegistryMessage], *, timeout: float = 30.0
) -> int:
    """Produce ``messages`` to ``xp.registry`` unchanged (key, value, headers, timestamp), in their order,
    as the ``registry`` principal; the number acknowledged. Creates the topics when missing."""
    if not messages:
        return 0

    produce_registry_records(
        settings,
        [
            {
                "key": m.key,
                "value": m.value,
                "headers": list(m.headers),
                **({"timestamp": m.timestamp_ms} if m.timestamp_ms else {}),
            }
            for m in messages
        ],
        timeout=timeout,
        doing="restoring",
    )
    return len(messages)


def read_registry(settings: KafkaSettings, timeout: float = 10.0) -> RegistrySnapshot:
    """The current registry: ``xp.registry`` from the beginning to its end offsets, folded."""
    return RegistrySnapshot.from_records(read_registry_records(settings, timeout))


def _features_of(records: list[RegistryRecord], experiment_key: str) -> set[str]:
    """Feature keys an experiment's records name (metadata ``feature``), besides its own key."""
    features = {experiment_key}
    for record in records:
        payload = record.payload
        if record.key == f"experiment:{experiment_key}" and isinstance(payload, ExperimentDefinition):
            features.add(str(payload.metadata.get("feature") or experiment_key))
    return features


def registry_history(settings: KafkaSettings, key: str, timeout: float = 10.0) -> list[RegistryRecord]:
    """The records the topic still holds for ``key``, oldest first. ``key`` is a registry key
    (``experiment:checkout``, ``override:checkout:u1``; ``override:checkout`` matches all its overrides)
    or a bare experiment key, which matches the experiment, its feature and its overrides. Compaction may
    have dropped older versions; the full history is the ``xp.registry`` table."""
    records = read_registry_records(settings, timeout)
    if ":" in key:
        prefix = f"{key}:" if key.startswith("override:") else None
        wanted = [r for r in records if r.key == key or (prefix is not None and r.key.startswith(prefix))]
    else:
        features = {f"feature:{f}" for f in _features_of(records, key)}
        wanted = [
            r
            for r in records
            if r.key == f"experiment:{key}" or r.key in features or r.key.startswith(f"override:{key}:")
        ]
    return sorted(wanted, key=lambda r: r.changed_at)


class RegistryFollower:
    """Follows ``xp.registry`` in a background thread; ``snapshot`` is always a complete snapshot, replaced
    by one attribute assignment after each batch of changes (readers never see a half-applied batch).

    ``start()`` returns once the topic has been read to the end offsets it had at start (or after
    ``start_timeout``; the thread keeps trying); the first snapshot published is that complete one.
    ``on_change(snapshot)`` runs on the follower thread after each swap; keep it short and do not raise
    (exceptions are logged).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        on_change: OnChange | None = None,
        start_timeout: float = 10.0,
        poll_timeout: float = 0.2,
    ) -> None:
        self.settings = settings
        self.snapshot: RegistrySnapshot = RegistrySnapshot()
        self.on_change: OnChange | None = on_change
        self.start_timeout = start_timeout
        self.poll_timeout = poll_timeout
        self.loaded = False
        """True once the topic was read to the end offsets it had when following began."""
        self.last_error: str | None = None
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait: bool = True) -> bool:
        """Start following; with ``wait``, block until loaded or ``start_timeout``. Returns ``loaded``."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="xp-registry-follower", daemon=True)
            self._thread.start()
        if wait:
            return self.wait_until(None, self.start_timeout)
        return self.loaded

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the consumer (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_until(
        self, predicate: Callable[[RegistrySnapshot], bool] | None = None, timeout: float = 10.0
    ) -> bool:
        """Wait until ``predicate(snapshot)`` holds (without one: until loaded); False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self.loaded if predicate is None else predicate(self.snapshot), timeout
            )

    @property
    def refused(self) -> dict[str, object]:
        """Registry records this process refused (forged, unsigned): count by reason and the latest ones
        (:func:`xpcore.registry_signing.refusals`); they are never in :attr:`snapshot`."""
        return refusals().summary()

    def __enter__(self) -> RegistryFollower:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _swap(self, snapshot: RegistrySnapshot, loaded: bool) -> None:
        changed = snapshot is not self.snapshot
        with self._condition:
            self.snapshot = snapshot
            self.loaded = self.loaded or loaded
            self._condition.notify_all()
        if changed and self.on_change is not None:
            try:
                self.on_change(snapshot)
            except Exception:
                logger.exception("registry on_change callback failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._follow()
            except Exception as error:
                self.last_error = str(error)
                logger.warning("registry follower: %s; retrying", error)
                self._stopping.wait(1.0)

    def _follow(self) -> None:
        keyring = _keyring(self.settings)
        reader = _registry_reader(self.settings, one_shot=False)
        try:
            partitions = None
            while partitions is None:
                partitions = reader.partitions(5.0)
                if partitions is None:  # no topic yet: an empty registry, wait for it to appear
                    self._swap(self.snapshot, loaded=True)
                    if self._stopping.wait(1.0):
                        return
            marks = reader.watermarks(partitions, 5.0)
            behind = {p: high for p, (low, high) in marks.items() if high > low}
            reader.assign({p: marks[p][0] for p in partitions})
            codec: RecordCodec[RegistryRecord] = RecordCodec(
                RegistryRecord, max_record_bytes=self.settings.max_record_bytes
            )
            self.last_error = None
            working = self.snapshot  # after a reconnect: re-reading only replays stale records
            if not behind:
                self._swap(working, loaded=True)
            while not self._stopping.is_set():
                batch: list[RegistryRecord] = []
                for message in reader.consume(500, self.poll_timeout, doing="following"):
                    record = _decode(codec, message, keyring)
                    if record is not None:
                        batch.append(record)
                    partition = message.partition()
                    if partition in behind and message.offset() + 1 >= behind[partition]:
                        del behind[partition]
                if behind:
                    for partition, position in reader.positions(list(behind)):
                        if position >= behind[partition]:
                            del behind[partition]
                if batch:
                    working = working.apply_many(batch)
                if behind:  # still catching up: publish nothing half-loaded
                    continue
                if working is not self.snapshot or not self.loaded:
                    self._swap(working, loaded=True)
        finally:
            reader.close()
