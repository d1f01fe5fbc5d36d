"""The thin producer and its token bucket, with a fake clock and a fake confluent-kafka producer."""

from __future__ import annotations

from typing import Any

import pytest

from xpcore.config import KafkaSettings
from xpstream.loadgen.produce import RecordProducer
from xpstream.loadgen.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


class FakeProducer:
    """Records produce() calls; raises BufferError every ``full_every`` calls; flush leaves ``stuck``."""

    def __init__(self, *, full_every: int = 0, stuck: int = 0) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.full_every = full_every
        self.stuck = stuck
        self.calls = 0
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.calls += 1
        if self.full_every and self.calls % self.full_every == 0:
            raise BufferError("Local: Queue full")
        self.messages.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        return self.stuck


def settings() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t1.")


def records(n: int) -> list[tuple[str, bytes, bytes]]:
    return [("xp.exposures" if i % 2 else "xp.events", f"u{i}".encode(), f"v{i}".encode()) for i in range(n)]


def test_token_bucket_holds_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(500):
        bucket.acquire(10)
    assert clock.slept == pytest.approx(500 * 10 / 1000 - 10 / 1000, rel=1e-6)


def test_token_bucket_allows_the_burst_without_waiting() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, burst=50, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(50) == 0.0
    assert bucket.acquire(1) == pytest.approx(0.01)


def test_records_go_to_prefixed_topics_in_order_keyed_by_unit() -> None:
    fake = FakeProducer(full_every=7)
    producer = RecordProducer(settings(), producer=fake)
    progress: list[int] = []
    producer.send(records(2500), on_progress=progress.append)
    report = producer.close()
    assert [m[1] for m in fake.messages] == [f"u{i}".encode() for i in range(2500)]
    assert {m[0] for m in fake.messages} == {"t1.xp.exposures", "t1.xp.events"}
    assert sum(progress) == 2500 == report.sent == report.delivered
    assert report.failed == 0 and report.first_error is None


def test_delivery_errors_and_unflushed_records_count_as_failed() -> None:
    fake = FakeProducer(stuck=3)
    producer = RecordProducer(settings(), producer=fake)
    producer.send(records(10))
    producer._on_delivery("Broker: Message size too large", None)
    producer._on_delivery(None, None)
    report = producer.close(timeout=0.1)
    assert report.failed == 4
    assert report.delivered == 6
    assert report.first_error == "Broker: Message size too large"


def test_rate_limit_paces_sending() -> None:
    clock = FakeClock()
    fake = FakeProducer()
    producer = RecordProducer(settings(), producer=fake, rate=2000.0, clock=clock)
    bucket: Any = producer._bucket
    bucket._sleep = clock.sleep
    producer.send(records(10_000))
    report = producer.close()
    assert report.seconds == pytest.approx(10_000 / 2000.0, rel=0.05)
    assert len(fake.messages) == 10_000
