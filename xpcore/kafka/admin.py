"""Talking to a Kafka cluster's admin API (confluent-kafka). An adapter: imported only where needed.

Besides topics (:mod:`xpcore.kafka.topics`): the ACLs of the roles (:func:`ensure_acls`) and the
SCRAM users of the local secured broker (:func:`ensure_scram_users`), both as the admin principal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xpcore.errors import TransientError
from xpcore.kafka.client_log import LIBRDKAFKA_LOGGER, error_callback, rate_limited
from xpcore.kafka.principals import ADMIN, acl_entries

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from xpcore.config import KafkaSettings

__all__ = ["LIBRDKAFKA_LOGGER", "admin_client", "broker_count", "ensure_acls", "ensure_scram_users"]

logger = logging.getLogger(__name__)


def admin_client(settings: KafkaSettings, *, role: str | None = ADMIN) -> AdminClient:
    """An AdminClient for the cluster in ``settings`` (the admin principal on the local broker)."""
    from confluent_kafka.admin import AdminClient

    config = settings.confluent_config(role)
    return AdminClient(
        dict(config),
        logger=rate_limited(LIBRDKAFKA_LOGGER),
        error_cb=error_callback(config.get("sasl.username")),
    )


def broker_count(settings: KafkaSettings, *, timeout: float) -> int:
    """How many brokers the cluster's metadata lists; 0 when it does not answer within ``timeout``."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)


def ensure_acls(settings: KafkaSettings, *, timeout: float = 30.0) -> int:
    """Create the ALLOW ACLs of every role for the topics of ``settings`` (its prefix); idempotent.

    Returns how many bindings were requested. Run as the admin principal of the local broker; on a
    production cluster the operator grants the same table (docs/operations.md).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    bindings = [
        AclBinding(
            ResourceType[entry.resource_type],
            entry.name,
            ResourcePatternType[entry.pattern],
            entry.principal,
            "*",
            AclOperation[entry.operation],
            AclPermissionType.ALLOW,
        )
        for entry in acl_entries(settings.topic, settings.topic_prefix)
    ]
    admin = admin_client(settings)  # kept referenced until every future is done
    futures = admin.create_acls(bindings, request_timeout=timeout)
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            raise TransientError(f"cannot create ACL {binding}: {error}") from error
    _wait_until_effective(admin, bindings, timeout)
    logger.info("ensured ACLs", extra={"count": len(bindings), "prefix": settings.topic_prefix})
    return len(bindings)


def _wait_until_effective(admin: AdminClient, bindings: list[Any], timeout: float) -> None:
    """Wait until the broker's authorizer lists every binding: CreateAcls returns once the controller
    committed them, the broker applies the metadata a moment later (a client right after would be denied)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name, principal and host
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    wanted = {str(binding) for binding in bindings}
    deadline = time.monotonic() + timeout
    while True:
        try:
            present = {str(binding) for binding in admin.describe_acls(everything).result(timeout=timeout)}
        except KafkaException as error:
            raise TransientError(f"cannot list ACLs: {error}") from error
        if wanted <= present:
            return
        if time.monotonic() > deadline:
            raise TransientError(f"{len(wanted - present)} new ACLs not in effect after {timeout:g}s")
        time.sleep(0.05)


def ensure_scram_users(
    settings: KafkaSettings,
    passwords: Mapping[str, str],
    mechanism: str,
    *,
    renewed: frozenset[str] = frozenset(),
    timeout: float = 30.0,
) -> list[str]:
    """Create the SCRAM credentials of the users of ``passwords`` (user → password) the broker does not
    have yet, and set those in ``renewed`` (new passwords); returns the users written. Existing users are
    left alone, so clients authenticating during a restart never meet a changed salt."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = admin_client(settings)  # kept referenced until every future is done
    try:
        described: Any = admin.describe_user_scram_credentials(request_timeout=timeout)  # one future
        existing = set(described.result(timeout=timeout))
    except KafkaException as error:
        raise TransientError(f"cannot list the SCRAM users: {error}") from error
    kind = ScramMechanism[mechanism.replace("-", "_")]
    wanted = sorted(user for user in passwords if user not in existing or user in renewed)
    upserts: list[Any] = [
        UserScramCredentialUpsertion(user, ScramCredentialInfo(kind, 4096), passwords[user].encode())
        for user in wanted
    ]
    if not upserts:
        return []
    futures = admin.alter_user_scram_credentials(upserts, request_timeout=timeout)
    for user, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            raise TransientError(f"cannot set the SCRAM credentials of {user}: {error}") from error
    return wanted
