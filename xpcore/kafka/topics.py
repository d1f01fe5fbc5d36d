"""The topics of DESIGN.md and creating them, idempotently.

Topic specs are plain data (tested without a broker); :func:`ensure_topics` is the thin adapter that
talks to Kafka through confluent-kafka's AdminClient.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from xpcore.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "DEAD_LETTERS",
    "EVENTS",
    "EXPOSURES",
    "FLINK_ATTRIBUTIONS",
    "FLINK_EVENTS",
    "FLINK_EXPOSURES",
    "REGISTRY",
    "TopicSpec",
    "ensure_topics",
    "topic_specs",
]

logger = logging.getLogger(__name__)

REGISTRY = "xp.registry"
"""Experiment/feature definitions and overrides, keyed by definition id; compacted, every change audited."""
EXPOSURES = "xp.exposures"
"""Assignment exposures, keyed by unit id (co-partitioned with ``xp.events``)."""
EVENTS = "xp.events"
"""Metric events, keyed by unit id (co-partitioned with ``xp.exposures``)."""
DEAD_LETTERS = "xp.dead-letters"
"""Rejected records with a reason code and the original bytes."""
ALERTS = "xp.alerts"
"""Data-quality and health alerts."""
FLINK_EXPOSURES = "xp.flink.exposures"
FLINK_EVENTS = "xp.flink.events"
"""The Flink job's hand-off topics (``--runner flink``): the input records it passed, written
transactionally, keyed by unit id like the inputs (docs/flink.md)."""
FLINK_ATTRIBUTIONS = "xp.flink.attributions"
"""The Flink job's attribution rows (JSON, keyed by unit id), written transactionally (decision 0102)."""


@dataclass(frozen=True)
class TopicSpec:
    """A logical topic: its name without prefix and the topic-level configs it is created with."""

    name: str
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        REGISTRY,
        MappingProxyType({"cleanup.policy": "compact"}),
        "definitions and overrides (compacted, latest per key)",
    ),
    TopicSpec(EXPOSURES, description="assignment exposures, keyed by unit id"),
    TopicSpec(EVENTS, description="metric events, keyed by unit id"),
    TopicSpec(DEAD_LETTERS, description="rejected records with reason and original bytes"),
    TopicSpec(ALERTS, description="data-quality and health alerts"),
    TopicSpec(FLINK_EXPOSURES, description="exposures handed off by the Flink job (--runner flink)"),
    TopicSpec(FLINK_EVENTS, description="events handed off by the Flink job (--runner flink)"),
    TopicSpec(FLINK_ATTRIBUTIONS, description="attribution rows of the Flink job (--runner flink)"),
)
"""Every topic xpstream creates, in DESIGN.md order."""


def topic_specs(settings: KafkaSettings) -> dict[str, TopicSpec]:
    """The full (prefixed) topic name of each spec, as created for these settings."""
    return {settings.topic(spec.name): spec for spec in ALL_TOPICS}


def ensure_topics(
    settings: KafkaSettings, *, timeout: float = 30.0, topics: Sequence[str] | None = None
) -> list[str]:
    """Create the missing topics of :data:`ALL_TOPICS` (or only ``topics``, logical names); return the
    full names of those created.

    Idempotent and safe to race: a topic that exists already (or is created concurrently) is left as
    it is. Partitions come from ``settings.topic_partitions``; the replication factor is the
    cluster's ``default.replication.factor``. A command asks only for the topics it uses: with least
    privilege a principal sees only the topics it is granted, so asking for all would try to create
    the others. A principal that may not create a missing topic gets one line saying who should.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    from xpcore.kafka.admin import admin_client

    admin = admin_client(settings)
    wanted = topic_specs(settings)
    if topics is not None:
        chosen = {settings.topic(name) for name in topics}
        wanted = {name: spec for name, spec in wanted.items() if name in chosen}
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        from xpcore.kafka.client_log import explain_failure

        refused = explain_failure(settings.confluent_config("admin"), error)
        raise TransientError(
            refused or f"cannot list topics on {settings.kafka_bootstrap}: {error}"
        ) from error
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    new_topics = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=-1,
            config=dict(wanted[name].config),
        )
        for name in missing
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            code = kafka_error.code() if isinstance(kafka_error, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
                raise ConfigError(
                    f"topic {name} is missing (or not visible to this principal) and this principal may "
                    "not create it: create the topics once as an admin and grant this principal its ACLs "
                    "(docs/production.md)"
                ) from error
            if code in (KafkaError.TOPIC_EXCEPTION, KafkaError.INVALID_CONFIG):
                raise ConfigError(f"cannot create topic {name}: {kafka_error}") from error
            raise TransientError(f"cannot create topic {name}: {error}") from error
        created.append(name)
        logger.info("created topic", extra={"topic": name, "partitions": settings.topic_partitions})
    if created and _local_secured(settings):
        from xpcore.kafka.admin import ensure_acls

        ensure_acls(settings, timeout=timeout)  # the roles may use the new prefix's topics
    return sorted(created)


def _local_secured(settings: KafkaSettings) -> bool:
    """Whether ``settings`` talk to a local secured broker with its generated credentials (so the admin
    principal may grant the roles' ACLs); never for explicitly configured (production) credentials."""
    from xpcore.kafka.credentials import local_client_config

    if settings.kafka_sasl_username:
        return False
    return bool(local_client_config(settings.local_credentials_dirs(), settings.kafka_bootstrap, None))
