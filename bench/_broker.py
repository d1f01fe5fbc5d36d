"""A Kafka broker for a benchmark: the one at ``--bootstrap``, or a fresh local one in a temporary home.

The fresh broker is the secured one of `xp stack up` (SASL/SCRAM, ACLs; decision 0043). While it runs,
``XP_KAFKA_CREDENTIALS_DIR`` and ``XP_REGISTRY_SIGNING_KEY_FILE`` point at its generated secrets, so the
bench's own clients and the `xp` processes it starts authenticate with their role's principal, as the
tests' session broker does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from xpcore.config import StackSettings

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["bench_broker", "bench_topics"]

_SECRETS_ENV = {
    "XP_KAFKA_CREDENTIALS_DIR": Path("secrets") / "kafka",
    "XP_REGISTRY_SIGNING_KEY_FILE": Path("secrets") / "registry-signing.keys",
}


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
    saved = {name: os.environ.get(name) for name in _SECRETS_ENV}
    os.environ.update({name: str(stack.home / relative) for name, relative in _SECRETS_ENV.items()})
    try:
        yield started.bootstrap
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_kafka(stack)


def bench_topics(bootstrap: str) -> KafkaSettings:
    """Settings for ``bootstrap`` with a fresh topic prefix (``bench-xxxxxx.``), its topics created."""
    import uuid

    from xpcore.config import KafkaSettings
    from xpcore.kafka.topics import ensure_topics

    kafka = KafkaSettings(kafka_bootstrap=bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    ensure_topics(kafka)
    return kafka
