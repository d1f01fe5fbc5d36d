"""The warehouse part of a backup: one Arrow IPC file per table (any :class:`Warehouse`).

Tables that materialized views fill (``TO xp.target``) are derived: they are not copied, and the views
refill them exactly when the restore inserts their sources (each view's rows come from the inserted
rows, as in normal operation: docs/pipeline.md). ``xp.schema_migrations`` is not copied either: the
restore target is migrated by this xpstream, and the backup's migrations must be the same ones.

A table is read whole and inserted as one block, so duplicates a ReplacingMergeTree had not merged yet
may be collapsed on insert: counts with ``FINAL`` (what every query of ours reads) are the same.

Table names come from ``system.tables`` and are quoted (:func:`quote_identifier`): the ``nosec B608``
marks say that, not that text is formatted into SQL.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

from xpcore.warehouse import DATABASE, Warehouse
from xpcore.warehouse.migrations import applied_migrations
from xpcore.warehouse.sqltext import quote_identifier
from xpstream.backup.manifest import BackupError

__all__ = [
    "export_tables",
    "import_tables",
    "migrations_of",
    "require_same_migrations",
    "table_layout",
    "tables_with_rows",
    "truncate_tables",
]

logger = logging.getLogger(__name__)

_VIEW_TARGET = re.compile(rf"\bTO\s+`?{DATABASE}`?\.`?(\w+)`?", re.IGNORECASE)
BOOKKEEPING = "schema_migrations"


def table_layout(warehouse: Warehouse) -> tuple[list[str], list[str]]:
    """(tables to copy, derived tables) of database ``xp``, by name."""
    listing = warehouse.query_arrow(
        "SELECT name, engine, create_table_query FROM system.tables "
        "WHERE database = {database:String} ORDER BY name",
        {"database": DATABASE},
    ).to_pylist()
    derived = set()
    for row in listing:
        if row["engine"] == "MaterializedView":
            match = _VIEW_TARGET.search(row["create_table_query"])
            if match:
                derived.add(match.group(1))
    tables = [
        r["name"]
        for r in listing
        if r["engine"] not in ("MaterializedView", "View")
        and r["name"] not in derived
        and r["name"] != BOOKKEEPING
    ]
    return tables, sorted(derived)


def migrations_of(warehouse: Warehouse) -> list[dict[str, object]]:
    return [
        {"version": m.version, "name": m.name, "checksum": m.checksum}
        for m in applied_migrations(warehouse).values()
    ]


def require_same_migrations(backup: list[dict[str, object]], target: list[dict[str, object]]) -> None:
    """Refuse a restore whose schema differs from the target's (restore with the xpstream that made it,
    then upgrade: migrations run forward from there)."""
    if backup == target:
        return
    have = f"{len(target)} migrations up to {target[-1]['version']:04d}" if target else "no migrations"
    made = f"{len(backup)} migrations up to {backup[-1]['version']:04d}" if backup else "no migrations"
    raise BackupError(
        f"the backup was made at schema {made}, this warehouse has {have} (or other checksums): restore "
        "it with the xpstream version that made it, then upgrade"
    )


def export_tables(warehouse: Warehouse, tables: list[str], directory: Path) -> dict[str, int]:
    """Write ``directory/<table>.arrow`` (zstd) for each table; rows per ``xp.<table>``."""
    import pyarrow as pa

    directory.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    for name in tables:
        data = warehouse.query_arrow(f"SELECT * FROM {DATABASE}.{quote_identifier(name)}")  # nosec B608
        with (
            pa.OSFile(str(directory / f"{name}.arrow"), "wb") as sink,
            pa.ipc.new_file(sink, data.schema, options=options) as writer,
        ):
            writer.write_table(data)
        rows[f"{DATABASE}.{name}"] = data.num_rows
        logger.info("backed up table", extra={"table": name, "rows": data.num_rows})
    return rows


def tables_with_rows(warehouse: Warehouse, tables: list[str]) -> dict[str, int]:
    """The tables among ``tables`` that hold rows, with their counts."""
    found: dict[str, int] = {}
    for name in tables:
        count = warehouse.query_arrow(
            f"SELECT count() AS n FROM {DATABASE}.{quote_identifier(name)}"  # nosec B608
        )["n"][0].as_py()
        if count:
            found[name] = int(count)
    return found


def truncate_tables(warehouse: Warehouse, tables: list[str]) -> None:
    for name in tables:
        warehouse.command(f"TRUNCATE TABLE IF EXISTS {DATABASE}.{quote_identifier(name)}")


def import_tables(warehouse: Warehouse, files: dict[str, Path]) -> dict[str, int]:
    """Insert each file into its table (``xp.<name>`` → file); rows per table.

    A fresh deduplication token per run and table: a re-restore after --force must not be taken for a
    re-sent block of the first restore (the dedup windows remember inserted blocks across TRUNCATE).
    """
    import pyarrow as pa

    run = uuid.uuid4().hex
    rows: dict[str, int] = {}
    for table, path in files.items():
        with pa.memory_map(str(path), "r") as source:
            data = pa.ipc.open_file(source).read_all()
        rows[table] = warehouse.insert_arrow(table, data, dedup_token=f"xp-restore-{run}-{table}")
    return rows
