"""`xp backup DEST` and `xp restore SRC`: the warehouse, the registry topic and the lake (issue #19)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from xpcore.errors import ValidationError
from xpstream.cli.output import OutputFormat, print_json

__all__ = ["backup", "register", "restore"]

_PARTS = ("warehouse", "registry", "lake")


def _skipped(values: list[str] | None) -> frozenset[str]:
    chosen = frozenset(values or [])
    unknown = sorted(chosen - set(_PARTS))
    if unknown:
        raise ValidationError(f"--skip takes warehouse, registry or lake, got {', '.join(unknown)}")
    return chosen


def backup(
    destination: Path = typer.Argument(..., help="A new (or empty) directory for the backup."),
    skip: list[str] = typer.Option(None, "--skip", help="Leave out a part: warehouse, registry or lake."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Back up the warehouse, the registry topic and the lake into a directory with a checksummed manifest.

    The embedded store is copied under its lock (stop `xp up` first); views' target tables are not copied
    (the restore refills them). Registry records are kept byte for byte, signatures included. A lake on
    S3 is not copied (keep it with the bucket's versioning). On a ClickHouse cluster prefer the server's
    BACKUP (docs/operations.md, "Backups").

    Examples:

      xp backup /backups/xp-2026-12-05

      xp backup /backups/xp-nightly --skip lake --format json
    """
    from xpcore.config import load_settings
    from xpcore.config.jobs import LakeSettings
    from xpstream.backup import create_backup

    manifest = create_backup(load_settings(LakeSettings), destination, skip=_skipped(skip))
    summary = {
        "destination": str(destination),
        "tables": manifest.tables,
        "derived_tables": manifest.derived_tables,
        "registry_records": manifest.registry_records,
        "lake": manifest.lake,
        "files": len(manifest.files),
    }
    if fmt is OutputFormat.json:
        print_json(summary)
    else:
        rows = sum(manifest.tables.values())
        sys.stdout.write(
            f"backed up {len(manifest.tables)} tables ({rows} rows), "
            f"{manifest.registry_records if manifest.registry_records is not None else 'no'} registry "
            f"records, lake: {'yes' if manifest.lake else 'no'} → {destination}\n"
        )


def restore(
    source: Path = typer.Argument(..., help="A directory made by `xp backup`."),
    force: bool = typer.Option(
        False, "--force", help="Replace a non-empty warehouse and lake; append to a non-empty registry topic."
    ),
    skip: list[str] = typer.Option(None, "--skip", help="Leave out a part: warehouse, registry or lake."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Restore a backup into this XP_HOME (or the configured server and Kafka), after checking every file.

    A tampered or truncated backup is refused before anything is written. A warehouse that holds rows, a
    registry topic that holds records or a lake with files is refused unless --force. The warehouse must
    have the same migrations as the backup (restore with the xpstream that made it, then upgrade).

    Examples:

      XP_HOME=/srv/xp-restored xp restore /backups/xp-2026-12-05

      xp restore /backups/xp-2026-12-05 --skip registry --force
    """
    from xpcore.config import load_settings
    from xpcore.config.jobs import LakeSettings
    from xpstream.backup import restore_backup

    report = restore_backup(load_settings(LakeSettings), source, force=force, skip=_skipped(skip))
    summary = {
        "source": str(source),
        "tables": report.tables,
        "registry_records": report.registry_records,
        "lake_files": report.lake_files,
    }
    if fmt is OutputFormat.json:
        print_json(summary)
    else:
        sys.stdout.write(
            f"restored {len(report.tables)} tables ({sum(report.tables.values())} rows), "
            f"{report.registry_records if report.registry_records is not None else 'no'} registry records, "
            f"{report.lake_files if report.lake_files is not None else 'no'} lake files from {source}\n"
        )


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
