"""confluent-kafka producer and consumer factories built from :class:`KafkaSettings`.

The only module (besides admin.py) that imports confluent_kafka; it does so lazily.

``role`` names the client's principal on the local secured broker (:mod:`xpcore.kafka.principals`);
with explicit SASL/TLS settings (a production cluster) it is ignored. librdkafka's log lines go through
Python logging, repeats rate-limited (:mod:`xpcore.kafka.client_log`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xpcore.kafka.client_log import error_callback, rate_limited

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = ["make_consumer", "make_producer"]


def make_producer(settings: KafkaSettings, *, role: str | None = None, **overrides: Any) -> Any:
    """An idempotent, batching, lz4-compressing producer (confluent_kafka.Producer).

    Partitions keys like Java clients and aiokafka/Faust (murmur2), so topics stay co-partitioned;
    lz4 is readable by aiokafka because cramjam is installed.
    """
    from confluent_kafka import Producer

    config: dict[str, Any] = {
        **settings.confluent_producer_config(role),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "message.max.bytes": max(settings.max_record_bytes + 64_000, 1_000_000),
    }
    config.update(overrides)
    config["logger"] = rate_limited(config.get("logger"))
    config["error_cb"] = error_callback(config.get("sasl.username"), config.get("error_cb"))
    return Producer(config)


def make_consumer(
    settings: KafkaSettings, group_id: str, *, role: str | None = None, **overrides: Any
) -> Any:
    """A consumer that never auto-commits: offsets are committed only after the warehouse insert."""
    from confluent_kafka import Consumer

    config: dict[str, Any] = {
        **settings.confluent_config(role),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    config.update(overrides)
    config["logger"] = rate_limited(config.get("logger"))
    config["error_cb"] = error_callback(config.get("sasl.username"), config.get("error_cb"))
    return Consumer(config)
