"""The Parquet data lake (`xp jobs run lake`): warehouse tables exported per UTC date, atomically.

``run_lake(settings, since=…, until=…)`` exports ``xp.exposures``, ``xp.events``,
``xp.attributed_events`` and ``xp.dead_letters`` to ``$XP_HOME/lake`` or ``XP_LAKE_URL`` (a directory
or ``s3://bucket/prefix``) as ``<table>/date=YYYY-MM-DD/[experiment_key=KEY/]part-<run>-<n>.parquet``,
with a ``_manifest.json`` per partition. Each partition is replaced whole, so re-running a range
replaces those dates and never doubles rows. Rows are read per date in chunks of at most
``XP_LAKE_BATCH_ROWS`` (planned from per-minute counts, bound parameters) and streamed into pyarrow's
dataset writer, so memory stays bounded whatever the table size.

Modules: :mod:`jobs.lake.plan` (pure planning, manifests), :mod:`jobs.lake.store` (file systems,
atomic partition writes), this one (warehouse reads, the run, the report). Guarantees: docs/lake.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.lake.plan import (
    Chunk,
    DatePlan,
    LakeLocation,
    LakeTable,
    day_bounds,
    parse_lake_url,
    partition_dir,
    plan_dates,
    table_names,
    to_utc,
)
from jobs.lake.store import export_schema, open_lake_filesystem, remove_leftovers, write_partition
from xpcore.errors import TransientError

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.config import LakeSettings
    from xpcore.warehouse import Warehouse

__all__ = ["LakeReport", "PartitionReport", "TableReport", "minute_counts_sql", "run_lake"]

logger = logging.getLogger(__name__)

_TIME = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class PartitionReport:
    """One partition written by a run."""

    table: str
    day: dt.date
    rows: int
    files: int
    path: str
    """Partition path relative to the lake root."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "table": self.table,
            "date": self.day.isoformat(),
            "rows": self.rows,
            "files": self.files,
            "path": self.path,
        }


@dataclass
class TableReport:
    """Totals of one table over a run."""

    rows: int = 0
    files: int = 0
    partitions: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"rows": self.rows, "files": self.files, "partitions": self.partitions}


@dataclass
class LakeReport:
    """What a lake run wrote: per-table row and file counts, and every partition replaced."""

    url: str
    run_id: str
    since: dt.datetime | None
    until: dt.datetime | None
    tables: dict[str, TableReport] = field(default_factory=dict)
    partitions: list[PartitionReport] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows written over every table."""
        return sum(t.rows for t in self.tables.values())

    @property
    def files(self) -> int:
        """Parquet files written over every table."""
        return sum(t.files for t in self.tables.values())

    def add(self, partition: PartitionReport) -> None:
        """Count one written partition."""
        totals = self.tables.setdefault(partition.table, TableReport())
        totals.rows += partition.rows
        totals.files += partition.files
        totals.partitions += 1
        self.partitions.append(partition)

    @property
    def ok(self) -> bool:
        """Always: a run that could not write raises instead."""
        return True

    def summary(self) -> str:
        """One line for people (`xp jobs run lake` prints it)."""
        return f"lake: {self.rows} rows in {self.files} files → {self.url}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: :meth:`as_dict`."""
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``xp jobs run lake --format json`` prints)."""

        def text(value: dt.datetime | None) -> str | None:
            return None if value is None else to_utc(value).isoformat().replace("+00:00", "Z")

        return {
            "url": self.url,
            "run_id": self.run_id,
            "since": text(self.since),
            "until": text(self.until),
            "rows": self.rows,
            "files": self.files,
            "tables": {name: totals.as_dict() for name, totals in self.tables.items()},
            "partitions": [p.as_dict() for p in self.partitions],
        }


def _time_filter(table: LakeTable, start: dt.datetime | None, end: dt.datetime | None) -> str:
    terms = []
    if start is not None:
        terms.append(f"{table.time_column} >= {{start:{_TIME}}}")
    if end is not None:
        terms.append(f"{table.time_column} < {{end:{_TIME}}}")
    return " AND ".join(terms) if terms else "1"


def _source(table: LakeTable) -> str:
    return f"{table.source} FINAL" if table.final else table.source


def _settings(table: LakeTable) -> str:
    # FINAL may skip merging across partitions: the tables are partitioned by month of the time column,
    # which is in their sorting key, so duplicates never sit in two partitions (about 1.5x faster).
    return " SETTINGS do_not_merge_across_partitions_select_final = 1" if table.final else ""


def minute_counts_sql(table: LakeTable, start: dt.datetime | None, end: dt.datetime | None) -> str:
    """Rows per minute of the time column (epoch seconds), within ``[start, end)`` when given."""
    return (
        f"SELECT toUInt32(toStartOfMinute({table.time_column})) AS minute, count() AS rows "
        f"FROM {_source(table)} WHERE {_time_filter(table, start, end)} "
        f"GROUP BY minute ORDER BY minute{_settings(table)}"  # nosec B608
    )


def chunk_sql(table: LakeTable) -> str:
    """Every column of the rows in ``[{start}, {end})``, in the table's lake order."""
    return (
        f"SELECT * FROM {_source(table)} "
        f"WHERE {table.time_column} >= {{start:{_TIME}}} AND {table.time_column} < {{end:{_TIME}}} "
        f"ORDER BY {', '.join(table.order_by)}{_settings(table)}"  # nosec B608
    )


def _bounds(start: dt.datetime | None, end: dt.datetime | None) -> Mapping[str, dt.datetime]:
    params: dict[str, dt.datetime] = {}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    return params


def _minute_counts(
    warehouse: Warehouse, table: LakeTable, start: dt.datetime | None, end: dt.datetime | None
) -> list[tuple[dt.datetime, int]]:
    result = warehouse.query_arrow(minute_counts_sql(table, start, end), _bounds(start, end))
    if result.num_rows == 0:
        return []
    minutes = result.column("minute").to_pylist()
    rows = result.column("rows").to_pylist()
    return [(dt.datetime.fromtimestamp(m, dt.UTC), int(n)) for m, n in zip(minutes, rows, strict=True)]


def _read_chunks(warehouse: Warehouse, table: LakeTable, chunks: tuple[Chunk, ...]) -> Iterator[pa.Table]:
    sql = chunk_sql(table)
    for chunk in chunks:
        result = warehouse.query_arrow(sql, {"start": chunk.start, "end": chunk.end})
        if result.num_rows:
            yield result


def _export_date(
    warehouse: Warehouse,
    fs: Any,
    location: LakeLocation,
    table: LakeTable,
    plan: DatePlan,
    settings: LakeSettings,
    run_id: str,
) -> PartitionReport:
    chunks = _read_chunks(warehouse, table, plan.chunks)
    first = next(chunks, None)
    if first is None:  # the rows went away since planning: the partition becomes empty
        first = warehouse.query_arrow(f"SELECT * FROM {table.source} LIMIT 0")  # nosec B608
        schema = export_schema(first.schema, table)
        tables: Iterator[pa.Table] = iter(())
    else:
        schema = export_schema(first.schema, table)
        tables = _chain(first, chunks)
    remove_leftovers(fs, location, table.name, plan.day)
    manifest = write_partition(
        fs,
        location,
        table,
        plan.day,
        tables,
        schema,
        run_id=run_id,
        max_rows_per_file=settings.lake_max_rows_per_file,
        compression=settings.lake_compression,
        now=dt.datetime.now(dt.UTC),
    )
    if manifest.rows != plan.rows:
        logger.warning(
            "lake partition rows differ from the plan (rows changed during the run)",
            extra={"table": table.name, "date": plan.day.isoformat(), "planned": plan.rows},
        )
    return PartitionReport(
        table=table.name,
        day=plan.day,
        rows=manifest.rows,
        files=len(manifest.files),
        path=partition_dir(table.name, plan.day),
    )


def _chain(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


def new_run_id(now: dt.datetime) -> str:
    """A unique, sortable run id: ``YYYYmmddTHHMMSSZ-<8 hex>`` (names the files a run writes)."""
    return f"{to_utc(now):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_lake(
    settings: LakeSettings,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    warehouse: Warehouse | None = None,
    on_partition: Callable[[PartitionReport], None] | None = None,
) -> LakeReport:
    """Export the configured tables to the lake, replacing every date partition of ``[since, until)``.

    ``since``/``until`` select whole UTC dates (a naive datetime is read as UTC; ``None``: no bound).
    Dates without rows in the warehouse are left as they are in the lake (it is an archive: the
    warehouse may have expired them). ``warehouse``: an already open warehouse to read (it stays open);
    by default the configured one is opened and closed. ``on_partition`` is called after each partition
    is in place (progress bars). Raises ``ConfigError`` for a bad lake URL/table, ``ValidationError``
    for an empty range, ``TransientError`` when the lake's storage fails, warehouse errors as they come;
    partitions already replaced stay replaced, the failed one is left as it was.
    """
    from xpcore.warehouse import open_warehouse

    tables = table_names(settings.lake_tables)
    location = parse_lake_url(settings.lake_location, cwd=str(Path.cwd()))
    start, end = day_bounds(since, until)
    fs = open_lake_filesystem(location, settings)
    report = LakeReport(
        url=location.url, run_id=new_run_id(dt.datetime.now(dt.UTC)), since=since, until=until
    )
    owned = warehouse is None
    store = open_warehouse(settings) if warehouse is None else warehouse
    try:
        for table in tables:
            report.tables.setdefault(table.name, TableReport())
            plans = plan_dates(_minute_counts(store, table, start, end), settings.lake_batch_rows)
            for plan in plans:
                try:
                    partition = _export_date(store, fs, location, table, plan, settings, report.run_id)
                except OSError as error:  # pyarrow's file system errors (local or S3)
                    where = f"{location.url}/{partition_dir(table.name, plan.day)}"
                    message = " ".join(str(error).split())
                    raise TransientError(f"lake: writing {where} failed: {message}") from error
                report.add(partition)
                logger.info(
                    "lake partition replaced",
                    extra={"table": table.name, "date": plan.day.isoformat(), "rows": partition.rows},
                )
                if on_partition is not None:
                    on_partition(partition)
    finally:
        if owned:
            store.close()
    return report
