"""One Kafka principal per role, least privilege: the ACL table of the local secured broker (pure data).

=========  ==========================================================================  ====================
role       allowed                                                                     used by
=========  ==========================================================================  ====================
admin      everything (``super.users``): topics, ACLs, SCRAM users                     `xp stack up`, tests
registry   WRITE ``xp.registry``; READ ``xp.registry``                                 `xp experiments apply`,
                                                                                       service overrides
service    WRITE ``xp.exposures``, ``xp.events``, ``xp.dead-letters``; READ registry   `xp assign serve`
worker     READ ``xp.exposures``, ``xp.events``, ``xp.dead-letters``, registry;       `xp stream run`
           WRITE ``xp.dead-letters``;
           READ groups ``xp-*`` and ``<topic prefix>*``
quality    READ registry; WRITE ``xp.alerts``                                          `xp jobs run quality`
loadgen    WRITE ``xp.exposures``, ``xp.events``; READ registry                        `xp loadgen`, replay
dashboard  READ registry; DESCRIBE ``xp.exposures``, ``xp.events`` and the groups      `xp dashboard serve`
           ``xp-*``, ``<topic prefix>*`` (consumer lag)
reader     READ ``xp.registry``                                                        every registry reader
flink      READ ``xp.exposures``, ``xp.events``; WRITE ``xp.flink.exposures``,          the Flink job
           ``xp.flink.events``, ``xp.flink.attributions``; READ groups ``xp-*``,       (`--runner flink`)
           ``<topic prefix>*``;
           WRITE, DESCRIBE transactional ids ``xp-flink-*``
=========  ==========================================================================  ====================

The worker also READs ``xp.flink.exposures``, ``xp.flink.events`` and ``xp.flink.attributions``: with
``--runner flink`` it loads what the Flink job handed off there (docs/flink.md).

Every role that reads the registry may also use consumer groups ``xp-registry-reader-*`` (the readers
assign partitions and never commit). Topic ACLs are LITERAL on the full (prefixed) topic name, created
for each topic prefix when its topics are created (:func:`acl_entries`). Only ``registry`` writes
``xp.registry``: a service, worker or load generator that is taken over cannot change definitions or
overrides (and the registry records are signed besides: docs/decisions/0044).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ADMIN",
    "DASHBOARD",
    "FLINK",
    "FLINK_TRANSACTIONAL_IDS",
    "LOADGEN",
    "QUALITY",
    "READER",
    "REGISTRY_PUBLISHER",
    "ROLES",
    "SERVICE",
    "WORKER",
    "AclEntry",
    "acl_entries",
]

ADMIN = "admin"
REGISTRY_PUBLISHER = "registry"
SERVICE = "service"
WORKER = "worker"
QUALITY = "quality"
LOADGEN = "loadgen"
DASHBOARD = "dashboard"
READER = "reader"
"""The registry readers (the service's, worker's, quality's, jobs' and CLI's): they only read xp.registry."""
FLINK = "flink"
"""The Flink job of ``xp stream run --runner flink``: reads the inputs, writes the hand-off topics
transactionally (docs/flink.md)."""

ROLES: tuple[str, ...] = (
    ADMIN,
    REGISTRY_PUBLISHER,
    SERVICE,
    WORKER,
    QUALITY,
    LOADGEN,
    DASHBOARD,
    READER,
    FLINK,
)
"""Every principal of the local broker (the SCRAM user name is the role name)."""

REGISTRY_READER_GROUPS = "xp-registry-reader-"
STREAM_GROUPS = "xp-"
FLINK_TRANSACTIONAL_IDS = "xp-flink-"
"""The prefix of the Flink job's transactional ids (its exactly-once Kafka sink)."""

_TOPIC_GRANTS: dict[str, tuple[tuple[str, str], ...]] = {
    REGISTRY_PUBLISHER: (("xp.registry", "WRITE"), ("xp.registry", "READ")),
    SERVICE: (
        ("xp.exposures", "WRITE"),
        ("xp.events", "WRITE"),
        ("xp.dead-letters", "WRITE"),
        ("xp.registry", "READ"),
    ),
    WORKER: (
        ("xp.exposures", "READ"),
        ("xp.events", "READ"),
        ("xp.dead-letters", "READ"),  # the collector's dead letters, loaded into xp.dead_letters (0036)
        ("xp.dead-letters", "WRITE"),
        ("xp.registry", "READ"),
        ("xp.flink.exposures", "READ"),  # what the Flink job handed off (--runner flink)
        ("xp.flink.events", "READ"),
        ("xp.flink.attributions", "READ"),
    ),
    QUALITY: (("xp.alerts", "WRITE"), ("xp.registry", "READ")),
    LOADGEN: (("xp.exposures", "WRITE"), ("xp.events", "WRITE"), ("xp.registry", "READ")),
    DASHBOARD: (("xp.exposures", "DESCRIBE"), ("xp.events", "DESCRIBE"), ("xp.registry", "READ")),
    READER: (("xp.registry", "READ"),),
    FLINK: (
        ("xp.exposures", "READ"),
        ("xp.events", "READ"),
        ("xp.flink.exposures", "WRITE"),
        ("xp.flink.events", "WRITE"),
        ("xp.flink.attributions", "WRITE"),
    ),
}


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ALLOW ACL: ``principal`` may ``operation`` on the resource (any host)."""

    principal: str
    resource_type: str
    """TOPIC, GROUP or TRANSACTIONAL_ID."""
    name: str
    pattern: str
    """LITERAL or PREFIXED."""
    operation: str


def acl_entries(topic: Callable[[str], str], topic_prefix: str) -> list[AclEntry]:
    """The ALLOW ACLs of every role for the topics ``topic(logical)`` (a settings' prefixed names)."""
    entries: set[AclEntry] = set()
    for role, grants in _TOPIC_GRANTS.items():
        principal = f"User:{role}"
        for logical, operation in grants:
            entries.add(AclEntry(principal, "TOPIC", topic(logical), "LITERAL", operation))
            if logical == "xp.registry" and operation == "READ":
                entries.add(AclEntry(principal, "GROUP", REGISTRY_READER_GROUPS, "PREFIXED", "READ"))
    group_prefixes = {STREAM_GROUPS, topic_prefix} - {""}
    for prefix in sorted(group_prefixes):
        entries.add(AclEntry(f"User:{WORKER}", "GROUP", prefix, "PREFIXED", "READ"))
        entries.add(AclEntry(f"User:{DASHBOARD}", "GROUP", prefix, "PREFIXED", "DESCRIBE"))
        entries.add(AclEntry(f"User:{FLINK}", "GROUP", prefix, "PREFIXED", "READ"))
    for operation in ("WRITE", "DESCRIBE"):
        entries.add(
            AclEntry(f"User:{FLINK}", "TRANSACTIONAL_ID", FLINK_TRANSACTIONAL_IDS, "PREFIXED", operation)
        )
    return sorted(entries)
