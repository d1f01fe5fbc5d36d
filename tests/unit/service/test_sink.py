"""KafkaSink's spool switch-over and in-order replay, with a fake producer (no broker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assignment.service.exposures import KafkaSink
from assignment.service.spool import Spool
from tests.fixtures.waiting import wait_until
from xpcore.config import ServiceSettings


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value


class FakeProducer:
    """Delivers on poll while ``up``; fails every queued record while down (like a delivery timeout)."""

    def __init__(self, queue_limit: int = 1000) -> None:
        self.up = True
        self.delivered: list[tuple[str, bytes | None, bytes]] = []
        self._queue: list[tuple[str, FakeMessage, Callable[[Any, Any], None]]] = []
        self._lock = threading.Lock()
        self.queue_limit = queue_limit
        self.fail_once: set[bytes] = set()
        """keys whose next delivery fails even while up"""

    def produce(
        self, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        with self._lock:
            if len(self._queue) >= self.queue_limit:
                raise BufferError("queue full")
            self._queue.append((topic, FakeMessage(topic, key, value), on_delivery))

    def poll(self, timeout: float = 0) -> int:
        with self._lock:
            queue, self._queue = self._queue, []
        for topic, message, callback in queue:
            key = message.key()
            ok = self.up and key not in self.fail_once
            if key is not None:
                self.fail_once.discard(key)
            if ok:
                self.delivered.append((topic, key, message.value()))
            callback(None if ok else "broker down", message)
        if not queue:
            time.sleep(min(timeout, 0.01))
        return len(queue)

    def flush(self, timeout: float = 0) -> int:
        self.poll(0)
        return len(self._queue)

    def purge(self) -> None:
        with self._lock:
            queue, self._queue = self._queue, []
        for _, message, callback in queue:
            callback("purged", message)

    def __len__(self) -> int:
        return len(self._queue)


def _settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(
        home=tmp_path, spool_replay_interval=0.02, exposure_delivery_timeout=1.0, topic_prefix="p."
    )


def _spooled_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("service-*.jsonl"))


def test_outage_spools_then_replays_everything_exactly_once_in_order(tmp_path: Path) -> None:
    producer = FakeProducer()
    sink = KafkaSink(_settings(tmp_path), producer=producer)
    sink.start()
    try:
        for i in range(5):
            sink.submit("xp.exposures", f"u{i}", b'{"i":%d}' % i)
        wait_until(lambda: len(producer.delivered) == 5, timeout=10, interval=0.01, message="5 deliveries")
        producer.up = False
        for i in range(5, 40):
            sink.submit("xp.exposures", f"u{i}", b'{"i":%d}' % i)
        wait_until(
            lambda: sink.stats()["spooling"] and sink.counts["spooled"] == 35,
            timeout=10,
            interval=0.01,
            message="35 spooled",
        )
        assert len(producer.delivered) == 5
        producer.up = True
        for i in range(40, 50):  # while the spool drains, new records queue behind it
            sink.submit("xp.exposures", f"u{i}", b'{"i":%d}' % i)
        wait_until(
            lambda: not sink.stats()["spooling"] and len(producer.delivered) == 50,
            timeout=10,
            interval=0.01,
            message="the replay of all 50",
        )
        sink.submit("xp.exposures", "u50", b'{"i":50}')
        wait_until(
            lambda: len(producer.delivered) == 51, timeout=10, interval=0.01, message="the 51st delivery"
        )
    finally:
        sink.stop()
    values = [v for _, _, v in producer.delivered]
    assert sorted(values) == sorted({b'{"i":%d}' % i for i in range(51)})  # each exactly once
    assert values[5:] == [b'{"i":%d}' % i for i in range(5, 51)]  # spooled ones replayed in order
    assert {t for t, _, _ in producer.delivered} == {"p.xp.exposures"}
    assert _spooled_bytes(tmp_path / "spool") == 0  # drained: delivered segments are deleted


def test_queue_full_spools_instead_of_blocking(tmp_path: Path) -> None:
    producer = FakeProducer(queue_limit=0)
    producer.up = False
    sink = KafkaSink(_settings(tmp_path), producer=producer)
    sink.start()
    submitting = threading.Thread(
        target=lambda: [sink.submit("xp.events", f"u{i}", b"{}") for i in range(100)]
    )
    submitting.start()
    submitting.join(timeout=30)  # a submit that waited for the full queue would hang here: it never does
    assert not submitting.is_alive()
    sink.stop()
    with Spool(tmp_path / "spool") as spool:
        assert [e.key for e in spool.read_batch(1000)] == [f"u{i}" for i in range(100)]


def test_shutdown_spools_undelivered_and_next_start_replays(tmp_path: Path) -> None:
    producer = FakeProducer()
    producer.up = False

    def stalled_poll(timeout: float = 0) -> int:
        time.sleep(0.01)
        return 0

    producer.poll = stalled_poll  # type: ignore[method-assign]  # nothing ever completes
    producer.flush = lambda timeout=0: len(producer)  # type: ignore[method-assign]
    sink = KafkaSink(_settings(tmp_path), producer=producer)
    sink.start()
    for i in range(3):
        sink.submit("xp.exposures", f"u{i}", b'{"i":%d}' % i)
    sink.stop()  # purge → spool
    with Spool(tmp_path / "spool") as spool:
        assert len(spool.read_batch(10)) == 3
    restarted = FakeProducer()
    sink = KafkaSink(_settings(tmp_path), producer=restarted)
    sink.start()
    try:
        wait_until(
            lambda: len(restarted.delivered) == 3 and not sink.stats()["spooling"],
            timeout=10,
            interval=0.01,
            message="the replay after the restart",
        )
    finally:
        sink.stop()
    assert [k for _, k, _ in restarted.delivered] == [b"u0", b"u1", b"u2"]


def test_a_record_failing_inside_a_replay_batch_is_retried_and_none_is_resent(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        for name in ("a", "b", "c", "d"):
            spool.append("xp.exposures", name, b'{"k":"%s"}' % name.encode())
    producer = FakeProducer()
    producer.fail_once = {b"c"}
    sink = KafkaSink(_settings(tmp_path), producer=producer)
    sink.start()
    try:
        wait_until(
            lambda: not sink.stats()["spooling"], timeout=10, interval=0.01, message="the spool to drain"
        )
    finally:
        sink.stop()
    keys = [k or b"" for _, k, _ in producer.delivered]
    assert sorted(keys) == [b"a", b"b", b"c", b"d"]  # each exactly once, c after its retry
    assert keys.index(b"c") > keys.index(b"d")
    assert _spooled_bytes(tmp_path / "spool") == 0  # drained: delivered segments are deleted


def test_records_are_written_ahead_before_the_producer_sees_them(tmp_path: Path) -> None:
    """A kill -9 with records in librdkafka's memory lost them (issue #13, item 6): now each record
    is in the spool file when ``submit`` returns, and the cursor only passes delivered ones."""
    producer = FakeProducer()
    producer.up = False
    producer.poll = lambda timeout=0: time.sleep(0.01) or 0  # type: ignore[method-assign]  # stalled
    sink = KafkaSink(_settings(tmp_path), producer=producer)
    sink.start()
    try:
        sink.submit_many([("xp.exposures", f"u{i}", b'{"i":%d}' % i) for i in range(3)])
        sink.submit("xp.exposures", "u3", b'{"i":3}')
        written = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("service-*.jsonl"))
        assert [line.count(b'"key":"u') for line in written.splitlines()] == [1, 1, 1, 1]
        assert sink.stats()["spool_pending_bytes"] == len(written)
    finally:
        sink.stop()


def test_a_full_spool_drops_counts_and_alerts(tmp_path: Path, caplog: Any) -> None:
    producer = FakeProducer()
    producer.up = False
    settings = _settings(tmp_path).model_copy(update={"spool_max_bytes": 2000})
    sink = KafkaSink(settings, producer=producer)
    sink.start()
    try:
        for i in range(100):
            sink.submit("xp.exposures", f"u{i}", b'{"i":%d}' % i)
        stats = sink.stats()
        assert stats["spool_full"] and 0 < stats["dropped"] < 100
        assert stats["spool_pending_bytes"] <= 2000
        assert sum("spool full" in r.message for r in caplog.records) == 1  # one alert, not one per record
        wait_until(lambda: sink.stats()["spooling"], timeout=10, interval=0.01, message="the sink to spool")
        producer.up = True
        wait_until(
            lambda: not sink.stats()["spooling"], timeout=10, interval=0.01, message="the spool to drain"
        )
        sink.submit("xp.exposures", "late", b"{}")
        assert not sink.stats()["spool_full"]
    finally:
        sink.stop()
    delivered = [k for _, k, _ in producer.delivered]
    assert len(delivered) == len(set(delivered)) == 100 - stats["dropped"] + 1
