"""The worker's batch filling: as many messages as asked, but no more once the byte budget is spent."""

from __future__ import annotations

from xpcore.kafka.group_consumer import CHUNK as _CHUNK
from xpcore.kafka.group_consumer import consume_batch as _consume_batch


class Message:
    def __init__(self, size: int | None) -> None:
        self._value = None if size is None else b"x" * size

    def value(self) -> bytes | None:
        return self._value


class QueuedConsumer:
    """Hands out queued messages like ``Consumer.consume``: at most ``num_messages``, nothing waits."""

    def __init__(self, sizes: list[int | None]) -> None:
        self.queue = [Message(size) for size in sizes]
        self.calls: list[int] = []

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.calls.append(num_messages)
        taken, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return taken


def test_small_records_fill_the_batch_to_its_count() -> None:
    consumer = QueuedConsumer([100] * (3 * _CHUNK + 7))
    assert len(_consume_batch(consumer, 2 * _CHUNK + 3, 0.5, 64 * 1024 * 1024)) == 2 * _CHUNK + 3
    assert len(_consume_batch(consumer, 10_000, 0.5, 64 * 1024 * 1024)) == _CHUNK + 4  # what is left


def test_large_records_stop_the_batch_at_the_byte_budget() -> None:
    # 3 chunks of 1 MiB records queued: with a 100 MiB budget the first chunk (500 MiB) is already over.
    consumer = QueuedConsumer([1024 * 1024] * (3 * _CHUNK))
    batch = _consume_batch(consumer, 5000, 0.5, 100 * 1024 * 1024)
    assert len(batch) == _CHUNK and consumer.calls == [_CHUNK]
    assert len(consumer.queue) == 2 * _CHUNK  # left for the next batches


def test_value_less_messages_count_as_empty() -> None:
    consumer = QueuedConsumer([None, 10] * _CHUNK)
    assert len(_consume_batch(consumer, 5000, 0.5, 1024 * 1024)) == 2 * _CHUNK
