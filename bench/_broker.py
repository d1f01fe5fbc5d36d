"""A Kafka broker for a benchmark: the one at ``--bootstrap``, or a fresh local one in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xpstream.config import StackSettings

__all__ = ["bench_broker"]


@contextmanager
def bench_broker(home: Path, bootstrap: str | None = None) -> Iterator[str]:
    """Yield a bootstrap address; a broker started here (on free ports under ``home``) is stopped after."""
    if bootstrap is not None:
        yield bootstrap
        return
    from tests.fixtures.kafka import free_ports
    from xpstream.stack import start_kafka, stop_kafka

    port, controller = free_ports(2)
    stack = StackSettings(home=home / "kafka-home", kafka_port=port, kafka_controller_port=controller)
    started = start_kafka(stack)
    try:
        yield started.bootstrap
    finally:
        stop_kafka(stack)
