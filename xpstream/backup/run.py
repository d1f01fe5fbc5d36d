"""Make and restore a backup (the adapters of the three parts, in order; see the package docstring).

Consistency: on chDB the backup holds the store lock for the whole copy, so nothing writes meanwhile
(a store served by a running `xp up` is refused: stop it first). On a ClickHouse server, per-table
copies are not one snapshot under live ingestion: use the server's BACKUP (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from xpcore.config.jobs import LakeSettings
from xpcore.errors import TransientError
from xpcore.warehouse import DATABASE, Warehouse, open_warehouse
from xpstream.backup.lake_copy import copy_lake_in, copy_lake_out, local_lake_path
from xpstream.backup.manifest import (
    MANIFEST_NAME,
    BackupError,
    Manifest,
    file_entry,
    verify_backup,
    write_manifest,
)
from xpstream.backup.registry_copy import read_records_file, write_records_file
from xpstream.backup.warehouse_copy import (
    export_tables,
    import_tables,
    migrations_of,
    require_same_migrations,
    table_layout,
    tables_with_rows,
    truncate_tables,
)

__all__ = ["PARTS", "RestoreReport", "create_backup", "restore_backup"]

logger = logging.getLogger(__name__)

PARTS = ("warehouse", "registry", "lake")
REGISTRY_FILE = "registry/records.jsonl"


def _open(settings: LakeSettings) -> Warehouse:
    from xpcore.warehouse.remote import RemoteWarehouse

    warehouse = open_warehouse(settings)
    if isinstance(warehouse, RemoteWarehouse):
        warehouse.close()
        raise BackupError(
            "the warehouse is served by a running `xp up`: a backup through its API would not be one "
            "consistent copy; stop `xp up` and run the backup again"
        )
    return warehouse


def create_backup(
    settings: LakeSettings, destination: Path, *, skip: frozenset[str] = frozenset()
) -> Manifest:
    """Back up the parts not in ``skip`` into the new directory ``destination``."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} exists and is not empty: give a new directory")
    destination.mkdir(parents=True, exist_ok=True)
    registry_records: int | None = None
    if "registry" not in skip:  # first: small, and the part most likely to be unreachable
        from assignment.registry_topic import read_registry_messages

        try:
            messages = read_registry_messages(settings, timeout=15.0)
        except TransientError as error:
            raise TransientError(
                f"cannot back up the registry topic: {error} (start Kafka, or add --skip registry)"
            ) from None
        write_records_file(messages, destination / REGISTRY_FILE)
        registry_records = len(messages)
    tables: dict[str, int] = {}
    derived: list[str] = []
    migrations: list[dict[str, object]] = []
    kind = "none"
    if "warehouse" not in skip:
        warehouse = _open(settings)
        try:
            kind = warehouse.kind
            migrations = migrations_of(warehouse)
            copied, derived = table_layout(warehouse)
            tables = export_tables(warehouse, copied, destination / "warehouse")
        finally:
            warehouse.close()
    lake = False
    if "lake" not in skip:
        lake_path = local_lake_path(settings.lake_location)
        if lake_path is None:
            logger.warning("the lake is not on a local disk (%s): not copied", settings.lake_location)
        else:
            copy_lake_out(lake_path, destination / "lake")
            lake = True
    manifest = Manifest(
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        warehouse_kind=kind,
        migrations=migrations,
        tables=tables,
        derived_tables=[f"{DATABASE}.{name}" for name in derived],
        registry_records=registry_records,
        lake=lake,
    )
    manifest.files = [
        file_entry(destination, path)
        for path in sorted(destination.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    ]
    write_manifest(destination, manifest)
    return manifest


@dataclass
class RestoreReport:
    tables: dict[str, int] = field(default_factory=dict)
    registry_records: int | None = None
    lake_files: int | None = None


def restore_backup(
    settings: LakeSettings, source: Path, *, force: bool = False, skip: frozenset[str] = frozenset()
) -> RestoreReport:
    """Restore the backup at ``source`` after verifying every file against the manifest.

    Refuses a warehouse that holds rows, a registry topic that holds records and a lake that holds files,
    unless ``force`` (the warehouse's tables are then emptied first, the lake replaced, and the registry's
    records appended, so the backup's definitions become the latest).
    """
    manifest = verify_backup(source)
    report = RestoreReport()
    if "warehouse" not in skip and manifest.tables:
        warehouse = _open(settings)
        try:
            require_same_migrations(manifest.migrations, migrations_of(warehouse))
            copied, derived = table_layout(warehouse)
            wanted = {t.removeprefix(f"{DATABASE}."): t for t in manifest.tables}
            unknown = sorted(set(wanted) - set(copied))
            if unknown:
                raise BackupError(f"the backup has tables this warehouse has not: {', '.join(unknown)}")
            holding = tables_with_rows(warehouse, copied + derived)
            if holding and not force:
                listed = ", ".join(f"xp.{name} ({rows} rows)" for name, rows in sorted(holding.items())[:3])
                raise BackupError(
                    f"the warehouse at {warehouse.location} is not empty ({listed}): restore into a fresh "
                    "XP_HOME, or add --force to replace its contents"
                )
            if holding:
                truncate_tables(warehouse, copied + derived)
            files = {table: source / "warehouse" / f"{name}.arrow" for name, table in wanted.items()}
            report.tables = import_tables(warehouse, files)
        finally:
            warehouse.close()
    if "registry" not in skip and manifest.registry_records is not None:
        from assignment.registry_topic import read_registry_messages, republish_registry_messages
        from xpcore.kafka.topics import ensure_topics

        messages = read_records_file(source / REGISTRY_FILE)
        ensure_topics(settings)  # a fresh cluster: the topic (and its ACLs) before reading it
        if len(messages) != manifest.registry_records:
            raise BackupError(
                f"{REGISTRY_FILE} holds {len(messages)} records, "
                f"the manifest says {manifest.registry_records}"
            )
        if messages and read_registry_messages(settings) and not force:
            raise BackupError(
                f"the registry topic {settings.topic('xp.registry')} already holds records: restore with "
                "--force to append the backup's (its definitions become the latest), or --skip registry"
            )
        report.registry_records = republish_registry_messages(settings, messages)
    if "lake" not in skip and manifest.lake:
        lake_path = local_lake_path(settings.lake_location)
        if lake_path is None:
            raise BackupError(
                f"the backup holds a local lake but XP_LAKE_URL is {settings.lake_location}: restore it "
                "with a local lake (or --skip lake and copy lake/ yourself)"
            )
        report.lake_files = copy_lake_in(source / "lake", lake_path, force=force)
    return report
