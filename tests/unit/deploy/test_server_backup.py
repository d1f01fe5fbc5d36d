"""The server BACKUP/RESTORE statements, as text; hostile targets are refused."""

from __future__ import annotations

import pytest

from xpcore.errors import ValidationError
from xpcore.warehouse.server_backup import server_backup_sql, server_restore_sql


def test_disk_and_s3_targets() -> None:
    assert server_backup_sql("disk:backups/xp-2026-12-05") == (
        "BACKUP DATABASE xp TO Disk('backups', 'xp-2026-12-05')"
    )
    assert server_backup_sql("https://s3.eu-west-1.amazonaws.com/acme/xp/1", cluster="xp") == (
        "BACKUP DATABASE xp ON CLUSTER xp TO S3('https://s3.eu-west-1.amazonaws.com/acme/xp/1')"
    )
    assert server_restore_sql("disk:backups/b1", cluster="prod") == (
        "RESTORE DATABASE xp ON CLUSTER prod FROM Disk('backups', 'b1')"
    )


@pytest.mark.parametrize(
    "target",
    [
        "s3://bucket/path",  # the server takes an https URL
        "https://h/b/p'), file('/etc/passwd",
        "https://h/b/../../x",
        "disk:backups/../x",
        "disk:back ups/x",
        "/var/backups/xp",
        "http://insecure/b/p",
    ],
)
def test_hostile_or_unsupported_targets_are_refused(target: str) -> None:
    with pytest.raises(ValidationError, match="backup target"):
        server_backup_sql(target)


def test_a_hostile_cluster_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="cluster name"):
        server_backup_sql("disk:backups/x", cluster="x TO File('/')")
