"""Talking to a Kafka cluster's admin API (confluent-kafka). An adapter: imported only where needed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from xpstream.config import KafkaSettings

__all__ = ["admin_client", "broker_count"]

#: librdkafka's own log lines go through Python logging under this name instead of raw stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("xpstream.kafka.librdkafka")


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An AdminClient for the cluster in ``settings``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(dict(settings.confluent_config()), logger=LIBRDKAFKA_LOGGER)


def broker_count(settings: KafkaSettings, *, timeout: float) -> int:
    """How many brokers the cluster's metadata lists; 0 when it does not answer within ``timeout``."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)
