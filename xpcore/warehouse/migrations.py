"""Numbered, idempotent schema migrations from ``sql/migrations/`` and named queries from ``sql/queries/``.

A migration is ``sql/migrations/NNNN_description.sql``: a header comment, then one or more statements
separated by ``;``. Pending migrations are applied in version order on first use and recorded in
``xp.schema_migrations`` (version, name, checksum, applied_at). Editing a migration that a store already
applied is an error: write a new migration instead.

Pure parts (:func:`discover_migrations`, :func:`plan_migrations`) need no database; :func:`apply_migrations`
runs a plan on any :class:`~xpcore.warehouse.base.Warehouse`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from xpcore.errors import ConfigError, TerminalError
from xpcore.warehouse.base import Warehouse
from xpcore.warehouse.sqltext import split_statements

__all__ = [
    "DATABASE",
    "MIGRATIONS_DIR",
    "QUERIES_DIR",
    "SQL_DIR",
    "AppliedMigration",
    "Migration",
    "MigrationError",
    "applied_migrations",
    "apply_migrations",
    "discover_migrations",
    "load_query",
    "plan_migrations",
]

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
"""The repository's ``sql/`` folder."""
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"

DATABASE = "xp"
"""The database holding every xpstream table, on chDB and on a server alike."""

BOOTSTRAP = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version""",
)
"""The migration machinery's own table, created before anything else."""

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
_QUERY_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class MigrationError(ConfigError):
    """The migrations on disk and the ones applied to the store disagree, or a file is malformed."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @cached_property
    def checksum(self) -> str:
        """sha256 of the text with line endings normalised."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()

    @cached_property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True)
class AppliedMigration:
    """A row of ``xp.schema_migrations``."""

    version: int
    name: str
    checksum: str


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``NNNN_description.sql`` in ``directory``, by version; other ``.sql`` names are an error."""
    if not directory.is_dir():
        return []
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"migration file {path.name} is not named NNNN_description.sql (lower-case, underscores)"
            )
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"two migrations share version {version:04d}: {migrations[version].label}.sql and {path.name}"
            )
        migration = Migration(version=version, name=match.group(2), sql=path.read_text(encoding="utf-8"))
        if not migration.statements:
            raise MigrationError(f"migration {path.name} holds no statement")
        migrations[version] = migration
    return [migrations[v] for v in sorted(migrations)]


def plan_migrations(
    available: Sequence[Migration], applied: Mapping[int, AppliedMigration]
) -> list[Migration]:
    """The migrations still to apply, in order; refuses edited or missing applied migrations."""
    by_version = {m.version: m for m in available}
    for version, done in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the warehouse has migration {version:04d}_{done.name} applied, but sql/migrations has no "
                "such file: this store was migrated by a newer or different xpstream"
            )
        if migration.checksum != done.checksum:
            raise MigrationError(
                f"migration {migration.label} was changed after it was applied to this warehouse "
                f"(checksum {done.checksum[:12]} applied, {migration.checksum[:12]} on disk): "
                "restore the file and add a new migration instead"
            )
    return [m for m in available if m.version not in applied]


def applied_migrations(warehouse: Warehouse) -> dict[int, AppliedMigration]:
    """What ``xp.schema_migrations`` records (the first application of each version wins)."""
    table = warehouse.query_arrow(
        f"SELECT version, argMin(name, applied_at) AS name, argMin(checksum, applied_at) AS checksum "  # nosec B608
        f"FROM {DATABASE}.schema_migrations GROUP BY version ORDER BY version"
    )
    return {
        int(row["version"]): AppliedMigration(int(row["version"]), str(row["name"]), str(row["checksum"]))
        for row in table.to_pylist()
    }


def apply_migrations(warehouse: Warehouse, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Create ``xp`` and the tracking table, then apply pending migrations in order; returns those applied."""
    available = discover_migrations(directory)
    for statement in BOOTSTRAP:
        warehouse.command(statement)
    pending = plan_migrations(available, applied_migrations(warehouse))
    for migration in pending:
        logger.info("applying migration %s location=%s", migration.label, warehouse.location)
        for number, statement in enumerate(migration.statements, start=1):
            try:
                warehouse.command(statement)
            except TerminalError as error:
                raise MigrationError(
                    f"migration {migration.label} failed at statement {number}: {error}"
                ) from None
        warehouse.command(
            f"INSERT INTO {DATABASE}.schema_migrations (version, name, checksum, applied_at) "
            "SELECT {version:UInt32}, {name:String}, {checksum:String}, now64(3, 'UTC')",
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
    return pending


def load_query(name: str, directory: Path = QUERIES_DIR) -> str:
    """The text of the named query ``sql/queries/NAME.sql`` (bind its ``{name:Type}`` parameters)."""
    if not _QUERY_NAME.match(name):
        raise TerminalError(f"query names are lower-case words with underscores, got {name!r}")
    path = directory / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TerminalError(f"no query named {name!r} (looked for {path})") from None
