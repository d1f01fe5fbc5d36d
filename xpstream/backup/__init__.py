"""`xp backup DEST` / `xp restore SRC`: the warehouse, the registry topic and the lake (issue #19).

A backup is a directory::

    DEST/
      manifest.json              format, when, what; every file with its size and SHA-256
      warehouse/<table>.arrow    one Arrow IPC file (zstd) per table; views' target tables are not copied
      registry/records.jsonl     every record of xp.registry, verbatim (key, value, headers: signatures kept)
      lake/…                     the Parquet lake's files as they are

``create_backup`` and ``restore_backup`` (:mod:`.run`) do the work; :mod:`.manifest` is the pure part
(checksums, verification: a tampered or truncated backup is refused before anything is written).
Errors: :class:`~xpstream.backup.manifest.BackupError` (a ValidationError, exit code 2).
"""

from __future__ import annotations

from xpstream.backup.manifest import BackupError, Manifest
from xpstream.backup.run import create_backup, restore_backup

__all__ = ["BackupError", "Manifest", "create_backup", "restore_backup"]
