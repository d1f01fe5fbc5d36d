"""The backup manifest: what a backup holds, with a size and SHA-256 per file (pure, no services).

:func:`verify_backup` checks a backup directory against its manifest before a restore touches anything:
a missing, truncated, grown or altered file, an unknown format or a file outside the backup is a
:class:`BackupError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from xpcore.errors import ValidationError

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "BackupError",
    "FileEntry",
    "Manifest",
    "file_entry",
    "read_manifest",
    "verify_backup",
    "write_manifest",
]

FORMAT = "xpstream-backup/1"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


class BackupError(ValidationError):
    """A backup that cannot be made or restored as asked (tampered, truncated, other schema, non-empty
    target)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the backup, relative to its root (POSIX separators)."""

    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What a backup holds."""

    created_at: str
    warehouse_kind: str
    migrations: list[dict[str, Any]]
    """``{"version", "name", "checksum"}`` of every migration the warehouse had applied."""
    tables: dict[str, int]
    """Rows per copied table (``xp.NAME`` → rows)."""
    derived_tables: list[str]
    """Tables filled by materialized views: not copied, refilled by the views on restore."""
    registry_records: int | None
    """Records copied from xp.registry; None when the registry was skipped."""
    lake: bool
    files: list[FileEntry] = field(default_factory=list)
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["files"] = [asdict(f) for f in self.files]
        return document


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(root: Path, path: Path) -> FileEntry:
    return FileEntry(path.relative_to(root).as_posix(), path.stat().st_size, sha256_of(path))


def write_manifest(root: Path, manifest: Manifest) -> Path:
    target = root / MANIFEST_NAME
    target.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _safe_relative(text: object) -> str:
    if not isinstance(text, str) or not text:
        raise BackupError("manifest.json: a file entry has no path")
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or text.startswith("\\"):
        raise BackupError(f"manifest.json: file path {text!r} points outside the backup")
    return text


def read_manifest(root: Path) -> Manifest:
    """The manifest of the backup at ``root``; a missing or malformed one is a BackupError."""
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BackupError(f"{root}: not a backup directory")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{root}: no {MANIFEST_NAME}: not an xp backup, or an incomplete one") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackupError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise BackupError(f"{path}: format {found!r} is not {FORMAT!r}")
    try:
        files = [
            FileEntry(_safe_relative(f["path"]), int(f["size"]), str(f["sha256"])) for f in document["files"]
        ]
        return Manifest(
            created_at=str(document["created_at"]),
            warehouse_kind=str(document["warehouse_kind"]),
            migrations=list(document["migrations"]),
            tables={str(k): int(v) for k, v in document["tables"].items()},
            derived_tables=[str(t) for t in document["derived_tables"]],
            registry_records=(
                None if document["registry_records"] is None else int(document["registry_records"])
            ),
            lake=bool(document["lake"]),
            files=files,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BackupError(f"{path}: malformed manifest ({type(error).__name__}: {error})") from None


def verify_backup(root: Path) -> Manifest:
    """The manifest, after checking every file it lists is there with its size and SHA-256."""
    manifest = read_manifest(root)
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            raise BackupError(f"backup {root}: {entry.path} is missing")
        size = path.stat().st_size
        if size != entry.size:
            raise BackupError(
                f"backup {root}: {entry.path} is {size} bytes, the manifest says {entry.size} "
                "(truncated or changed)"
            )
        if sha256_of(path) != entry.sha256:
            raise BackupError(
                f"backup {root}: {entry.path} does not match its SHA-256 (changed after backup)"
            )
    listed = {entry.path for entry in manifest.files}
    for table in manifest.tables:
        if f"warehouse/{table.removeprefix('xp.')}.arrow" not in listed:
            raise BackupError(f"backup {root}: table {table} has no file in the manifest")
    if manifest.registry_records is not None and "registry/records.jsonl" not in listed:
        raise BackupError(f"backup {root}: the registry records are not in the manifest")
    return manifest
