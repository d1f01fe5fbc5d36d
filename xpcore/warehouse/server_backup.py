"""BACKUP / RESTORE statements for a ClickHouse server or cluster (pure: generated text, tested as text).

The server copies its own parts, consistently per table, to a backup disk or to S3; credentials come
from the server's configuration (a named ``backups`` disk, or S3 credentials from the environment or an
IAM role: ``use_environment_credentials``), never from the statement. `xp warehouse backup-sql` prints
them; docs/operations.md ("Backups") shows the whole procedure.

    BACKUP DATABASE xp ON CLUSTER xp TO S3('https://bucket.s3.amazonaws.com/xp/2026-12-05')
    RESTORE DATABASE xp ON CLUSTER xp FROM Disk('backups', 'xp-2026-12-05')
"""

from __future__ import annotations

import re

from xpcore.errors import ValidationError
from xpcore.warehouse.cluster_ddl import validate_cluster_name
from xpcore.warehouse.migrations import DATABASE
from xpcore.warehouse.sqltext import string_literal

__all__ = ["backup_destination", "server_backup_sql", "server_restore_sql"]

_DISK_TARGET = re.compile(r"^disk:([A-Za-z_][A-Za-z0-9_]*)/([A-Za-z0-9_.\-]+)$")
_S3_TARGET = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d+)?/[A-Za-z0-9_.\-/]+$")


def backup_destination(target: str) -> str:
    """``disk:NAME/BACKUP`` → ``Disk('NAME', 'BACKUP')``; ``https://host/bucket/path`` → ``S3('…')``."""
    disk = _DISK_TARGET.match(target)
    if disk:
        return f"Disk({string_literal(disk.group(1))}, {string_literal(disk.group(2))})"
    if _S3_TARGET.match(target) and ".." not in target:
        return f"S3({string_literal(target)})"
    raise ValidationError(
        f"backup target {target!r}: give disk:DISK/NAME (a disk named in the server's backups config) or "
        "https://HOST/BUCKET/PATH (S3; credentials from the server's config)"
    )


def _on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER {validate_cluster_name(cluster)}" if cluster else ""


def server_backup_sql(target: str, *, cluster: str | None = None) -> str:
    """The statement that backs up database ``xp`` (every shard and table with ``cluster``)."""
    return f"BACKUP DATABASE {DATABASE}{_on_cluster(cluster)} TO {backup_destination(target)}"


def server_restore_sql(target: str, *, cluster: str | None = None) -> str:
    """The statement that restores database ``xp`` from a backup made by :func:`server_backup_sql`."""
    return f"RESTORE DATABASE {DATABASE}{_on_cluster(cluster)} FROM {backup_destination(target)}"
