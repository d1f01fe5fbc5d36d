"""Kafka: topic names and specs (pure), and admin helpers (confluent-kafka, imported lazily).

Importing this package does not import confluent-kafka; only calling :func:`ensure_topics` or the
functions of :mod:`xpcore.kafka.admin` does.
"""

from __future__ import annotations

from xpcore.kafka.topics import (
    ALERTS,
    ALL_TOPICS,
    DEAD_LETTERS,
    EVENTS,
    EXPOSURES,
    REGISTRY,
    TopicSpec,
    ensure_topics,
    topic_specs,
)

__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "DEAD_LETTERS",
    "EVENTS",
    "EXPOSURES",
    "REGISTRY",
    "TopicSpec",
    "ensure_topics",
    "topic_specs",
]
