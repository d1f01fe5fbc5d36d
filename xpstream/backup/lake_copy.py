"""The lake part of a backup: the files of a local lake, copied as they are.

A lake on S3 (``XP_LAKE_URL=s3://…``) is not copied: keep it with the bucket's own versioning or
replication (docs/operations.md, "Backups"); the backup records ``lake: false``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from xpstream.backup.manifest import BackupError

__all__ = ["copy_lake_in", "copy_lake_out", "local_lake_path"]


def local_lake_path(location: str) -> Path | None:
    """The lake's directory, or None when it is not on a local disk."""
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    if "://" in location:
        return None
    return Path(location)


def copy_lake_out(lake: Path, destination: Path) -> int:
    """Copy every file under ``lake`` into ``destination``; the number of files."""
    if not lake.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return 0
    shutil.copytree(lake, destination, symlinks=False, dirs_exist_ok=False)
    return sum(1 for p in destination.rglob("*") if p.is_file())


def copy_lake_in(source: Path, lake: Path, *, force: bool) -> int:
    """Copy the backup's lake into ``lake``; refuse a lake that holds files unless ``force`` (then it is
    replaced)."""
    if lake.is_dir() and any(p.is_file() for p in lake.rglob("*")):
        if not force:
            raise BackupError(f"the lake {lake} is not empty: restore with --force to replace it")
        shutil.rmtree(lake)
    lake.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, lake, symlinks=False, dirs_exist_ok=True)
    return sum(1 for p in lake.rglob("*") if p.is_file())
