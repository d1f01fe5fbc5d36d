"""Reading one topic by assigned partitions: its partitions, end offsets, positions and records (an adapter).

For readers that fold a whole topic or tail it (the registry: ``assignment.registry_topic``), never
committing offsets. Wraps a consumer from :func:`xpcore.kafka.clients.make_consumer`; confluent-kafka is
imported inside the methods. Failures are :class:`~xpcore.errors.TransientError` with one clear line.

::

    reader = TopicReader(consumer, "xp.registry", settings, role=READER)
    partitions = reader.partitions(timeout=5)          # None: the topic does not exist
    marks = reader.watermarks(partitions, timeout=5)   # partition → (low, high)
    reader.assign({p: low for p, (low, _) in marks.items()})
    for message in reader.consume(500, timeout=0.2, doing="reading"): ...
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from xpcore.errors import TransientError

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["TopicReader", "unreachable"]

logger = logging.getLogger(__name__)


def unreachable(settings: KafkaSettings, error: object, role: str | None) -> TransientError:
    """The error for a failure to talk to Kafka: refused credentials said as such, else unreachable."""
    from xpcore.kafka.client_log import explain_failure

    if hasattr(error, "str") and callable(error.str):  # a KafkaError: its text, not its repr
        error = error.str()
    refused = explain_failure(settings.confluent_config(role), error)
    if refused is not None:
        return TransientError(refused)
    return TransientError(
        f"cannot reach Kafka at {settings.kafka_bootstrap} ({settings.unreachable_hint()}): {error}"
    )


class TopicReader:
    """One topic read through ``consumer`` by assignment (no group, no commits)."""

    def __init__(self, consumer: Any, topic: str, settings: KafkaSettings, *, role: str | None) -> None:
        self.consumer = consumer
        self.topic = topic
        self._settings = settings
        self._role = role

    def partitions(self, timeout: float) -> list[int] | None:
        """The topic's partition ids; None when the topic does not exist."""
        from confluent_kafka import KafkaError, KafkaException

        topic, settings = self.topic, self._settings
        try:
            metadata = self.consumer.list_topics(topic, timeout=timeout)
        except KafkaException as error:
            self.consumer.poll(0.2)  # serves the error callback: was it an authentication failure?
            raise unreachable(settings, error.args[0] if error.args else error, self._role) from error
        info = metadata.topics.get(topic)
        if info is None:
            return None
        if info.error is not None:
            if info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            if info.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise TransientError(
                    f"not allowed to read {topic} on {settings.kafka_bootstrap} (TOPIC_AUTHORIZATION_FAILED):"
                    " the client's principal needs READ on it (docs/operations.md, Kafka security), or the"
                    " topic does not exist yet"
                )
            raise TransientError(f"cannot read metadata of {topic}: {info.error}")
        return sorted(info.partitions)

    def watermarks(self, partitions: list[int], timeout: float) -> dict[int, tuple[int, int]]:
        """(low, high) offsets per partition; retries while a new topic's partitions elect leaders."""
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        retriable = {
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._TIMED_OUT,
        }
        deadline = time.monotonic() + timeout
        marks = {}
        for partition in partitions:
            while True:
                try:
                    marks[partition] = self.consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition),
                        timeout=max(deadline - time.monotonic(), 0.1),
                        cached=False,
                    )
                    break
                except KafkaException as error:
                    kafka_error = error.args[0] if error.args else None
                    code = kafka_error.code() if isinstance(kafka_error, KafkaError) else None
                    if code in retriable and time.monotonic() < deadline:
                        time.sleep(0.1)
                        continue
                    detail = kafka_error.str() if isinstance(kafka_error, KafkaError) else error
                    raise TransientError(
                        f"cannot read end offsets of {self.topic}[{partition}]: {detail}"
                    ) from error
        return marks

    def assign(self, starts: dict[int, int]) -> None:
        """Read ``partition → from offset`` (replacing any earlier assignment)."""
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in starts.items()])

    def positions(self, partitions: list[int]) -> list[tuple[int, int]]:
        """(partition, next offset to read) of the assigned ``partitions``."""
        from confluent_kafka import TopicPartition

        if not partitions:
            return []
        wanted = [TopicPartition(self.topic, p) for p in partitions]
        return [(tp.partition, tp.offset) for tp in self.consumer.position(wanted)]

    def consume(self, count: int, timeout: float, *, doing: str = "reading") -> list[Any]:
        """Up to ``count`` records within ``timeout`` s; client notices skipped, a fatal error raised."""
        records = []
        for message in self.consumer.consume(num_messages=count, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise TransientError(f"{doing} {self.topic} failed: {error}")
                logger.debug("consumer notice: %s", error)
                continue
            records.append(message)
        return records

    def close(self) -> None:
        self.consumer.close()
