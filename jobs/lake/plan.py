"""The pure half of the data lake: tables, date ranges, chunk plans, partition paths, manifests.

Nothing here touches ClickHouse, a file system or S3, so all of it is unit-tested without services
(tests/unit/lake/). :mod:`jobs.lake.store` writes what this module plans; :mod:`jobs.lake` runs it.

Layout (docs/lake.md)::

    <lake>/<table>/date=YYYY-MM-DD/[experiment_key=KEY/]part-<run_id>-<n>.parquet
    <lake>/<table>/date=YYYY-MM-DD/_manifest.json
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from xpcore.errors import ConfigError, ValidationError

__all__ = [
    "LAKE_TABLES",
    "MANIFEST_NAME",
    "Chunk",
    "DatePlan",
    "LakeLocation",
    "LakeTable",
    "Manifest",
    "ManifestFile",
    "basename_template",
    "chunk_queries_cover_day",
    "day_bounds",
    "day_window",
    "parse_lake_url",
    "partition_dir",
    "plan_dates",
    "stale_files",
    "table_names",
    "to_utc",
]

MANIFEST_NAME = "_manifest.json"
"""File in every partition listing its current data files (readers following it never see a mix)."""

MANIFEST_FORMAT = 1

_DAY = dt.timedelta(days=1)
_MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class LakeTable:
    """One warehouse table exported to the lake."""

    name: str
    """Folder under the lake root, e.g. ``exposures``."""
    source: str
    """Warehouse table, ``xp.<name>``."""
    time_column: str
    """The column whose UTC date picks the ``date=`` partition."""
    order_by: tuple[str, ...]
    """Sort order of the rows inside a partition (stable output for the same data)."""
    final: bool
    """Read with ``FINAL`` (ReplacingMergeTree: the lake holds one row per unique record)."""
    experiment_partition: bool = False
    """Split each date into ``experiment_key=KEY/`` sub-folders."""
    binary_columns: tuple[str, ...] = ()
    """``String`` columns holding raw bytes: written as Parquet ``binary``, not UTF-8 text."""


LAKE_TABLES: dict[str, LakeTable] = {
    table.name: table
    for table in (
        LakeTable(
            name="exposures",
            source="xp.exposures",
            time_column="exposed_at",
            order_by=("experiment_key", "exposed_at", "exposure_id"),
            final=True,
            experiment_partition=True,
        ),
        LakeTable(
            name="events",
            source="xp.events",
            time_column="occurred_at",
            order_by=("occurred_at", "event_id"),
            final=True,
        ),
        LakeTable(
            name="attributed_events",
            source="xp.attributed_events",
            time_column="occurred_at",
            order_by=("experiment_key", "occurred_at", "event_id"),
            final=True,
            experiment_partition=True,
        ),
        LakeTable(
            name="dead_letters",
            source="xp.dead_letters",
            time_column="received_at",
            order_by=("received_at", "dead_letter_id"),
            final=False,
            binary_columns=("original", "original_key"),
        ),
    )
}
"""Every table the lake exports, by lake folder name (the order is the export order)."""


def to_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive datetime is read as UTC (the CLI's ``--since 2024-05-17`` is naive)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def day_bounds(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The whole UTC days covering ``[since, until)``: (midnight of since's date, the midnight after).

    Partitions are whole days, so a partial day is exported whole. ``until`` exactly at midnight does
    not pull in that day. ``None`` leaves that side open. Raises ``ValidationError`` when empty.
    """
    start = _midnight(to_utc(since).date()) if since is not None else None
    end: dt.datetime | None = None
    if until is not None:
        until_utc = to_utc(until)
        end = _midnight(until_utc.date())
        if end < until_utc:
            end += _DAY
    if since is not None and until is not None and to_utc(until) <= to_utc(since):
        raise ValidationError(f"empty date range: until ({until}) is not after since ({since})")
    return start, end


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[midnight, next midnight)`` of ``day`` in UTC."""
    start = _midnight(day)
    return start, start + _DAY


@dataclass(frozen=True)
class Chunk:
    """One query's worth of rows: ``[start, end)`` of the time column, ``rows`` when planned."""

    start: dt.datetime
    end: dt.datetime
    rows: int


@dataclass(frozen=True)
class DatePlan:
    """The chunks that export one date; together they tile the whole day."""

    day: dt.date
    rows: int
    chunks: tuple[Chunk, ...]


def plan_dates(minute_counts: Iterable[tuple[dt.datetime, int]], batch_rows: int) -> list[DatePlan]:
    """Group per-minute row counts into per-date plans of chunks of at most ``batch_rows`` rows.

    Chunks of one date tile the day (the first starts at midnight, each starts where the previous
    ended, the last ends at the next midnight), so a row is never skipped between chunks, even one
    inserted after planning. A single minute with more than ``batch_rows`` rows is one chunk of its own.
    Dates without rows get no plan (their partitions are left as they are).
    """
    if batch_rows < 1:
        raise ValidationError(f"batch_rows must be at least 1, got {batch_rows}")
    by_day: dict[dt.date, list[tuple[dt.datetime, int]]] = {}
    for minute, rows in sorted((to_utc(m), n) for m, n in minute_counts):
        if rows > 0:
            by_day.setdefault(minute.date(), []).append((minute, rows))
    plans = []
    for day, minutes in sorted(by_day.items()):
        day_start, day_end = day_window(day)
        bounds: list[tuple[dt.datetime, int]] = []  # (chunk start minute, rows)
        for minute, rows in minutes:
            if bounds and bounds[-1][1] + rows <= batch_rows:
                bounds[-1] = (bounds[-1][0], bounds[-1][1] + rows)
            else:
                bounds.append((minute, rows))
        chunks = []
        for index, (start, rows) in enumerate(bounds):
            chunk_start = day_start if index == 0 else start
            chunk_end = bounds[index + 1][0] if index + 1 < len(bounds) else day_end
            chunks.append(Chunk(start=chunk_start, end=chunk_end, rows=rows))
        plans.append(DatePlan(day=day, rows=sum(n for _, n in minutes), chunks=tuple(chunks)))
    return plans


def chunk_queries_cover_day(plan: DatePlan) -> bool:
    """True when the chunks of ``plan`` tile its day without gap or overlap (an invariant, tested)."""
    start, end = day_window(plan.day)
    cursor = start
    for chunk in plan.chunks:
        if chunk.start != cursor or chunk.end <= chunk.start:
            return False
        cursor = chunk.end
    return cursor == end and all(c.start.tzinfo is not None for c in plan.chunks)


def partition_dir(table: str, day: dt.date) -> str:
    """Path of a date partition relative to the lake root: ``<table>/date=YYYY-MM-DD``."""
    return f"{table}/date={day.isoformat()}"


_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def basename_template(run_id: str) -> str:
    """pyarrow ``basename_template`` of a run's data files: ``part-<run_id>-{i}.parquet``."""
    if not _RUN_ID.match(run_id):
        raise ValidationError(f"invalid run id {run_id!r}")
    return f"part-{run_id}-{{i}}.parquet"


@dataclass(frozen=True)
class ManifestFile:
    """One data file of a partition: path relative to the partition folder, and its row count."""

    path: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    """The current content of one partition; replaced in one write after its files are in place."""

    table: str
    day: dt.date
    run_id: str
    written_at: dt.datetime
    files: tuple[ManifestFile, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> int:
        """Rows in the partition."""
        return sum(f.rows for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``_manifest.json`` document)."""
        return {
            "format": MANIFEST_FORMAT,
            "table": self.table,
            "date": self.day.isoformat(),
            "run_id": self.run_id,
            "written_at": to_utc(self.written_at).isoformat().replace("+00:00", "Z"),
            "rows": self.rows,
            "files": [{"path": f.path, "rows": f.rows} for f in self.files],
        }

    def to_json(self) -> bytes:
        """The manifest as compact, sorted-key UTF-8 JSON."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse a ``_manifest.json`` (raises ``ValidationError`` on anything else)."""
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {doc.get('format')!r}")
            return cls(
                table=str(doc["table"]),
                day=dt.date.fromisoformat(doc["date"]),
                run_id=str(doc["run_id"]),
                written_at=dt.datetime.fromisoformat(doc["written_at"].replace("Z", "+00:00")),
                files=tuple(ManifestFile(path=str(f["path"]), rows=int(f["rows"])) for f in doc["files"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValidationError(f"invalid lake manifest: {error}") from None


def stale_files(listed: Iterable[str], manifest: Manifest) -> list[str]:
    """Files under a partition (relative paths) that the new manifest does not list: to delete.

    The manifest itself is never stale. Sorted, for deterministic deletes and logs.
    """
    keep = {f.path for f in manifest.files} | {MANIFEST_NAME}
    return sorted(path for path in set(listed) if path not in keep)


@dataclass(frozen=True)
class LakeLocation:
    """Where the lake lives: a local directory or an S3 bucket and key prefix."""

    scheme: str
    """``file`` or ``s3``."""
    root: str
    """Local absolute path, or ``bucket/prefix`` (no trailing slash) for S3."""

    @property
    def url(self) -> str:
        """The location as a URL (``file:///…`` or ``s3://bucket/prefix``)."""
        return f"s3://{self.root}" if self.scheme == "s3" else f"file://{self.root}"

    def join(self, *parts: str) -> str:
        """A path under the root, in the file system's own form (no scheme)."""
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])


def parse_lake_url(url: str, *, cwd: str = "") -> LakeLocation:
    """``s3://bucket/prefix``, ``file:///abs/path`` or a plain path (relative to ``cwd``) → location."""
    text = url.strip()
    if not text:
        raise ConfigError("XP_LAKE_URL is empty")
    if "://" not in text:
        path = text if text.startswith("/") or not cwd else f"{cwd.rstrip('/')}/{text}"
        return LakeLocation(scheme="file", root=path.rstrip("/") or "/")
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"XP_LAKE_URL {url!r}: a file URL needs an absolute path (file:///…)")
        return LakeLocation(scheme="file", root=parts.path.rstrip("/") or "/")
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"XP_LAKE_URL {url!r}: missing bucket (s3://bucket/prefix)")
        if parts.query or parts.fragment:
            raise ConfigError(f"XP_LAKE_URL {url!r}: no query or fragment allowed")
        prefix = parts.path.strip("/")
        return LakeLocation(scheme="s3", root=f"{parts.netloc}/{prefix}" if prefix else parts.netloc)
    raise ConfigError(f"XP_LAKE_URL {url!r}: unsupported scheme {parts.scheme!r} (use a path or s3://)")


def table_names(requested: Sequence[str]) -> list[LakeTable]:
    """The lake tables named in ``requested`` (in export order); unknown names are a ``ConfigError``."""
    unknown = sorted(set(requested) - set(LAKE_TABLES))
    if unknown:
        raise ConfigError(f"unknown lake table(s) {unknown}; known: {sorted(LAKE_TABLES)}")
    return [table for name, table in LAKE_TABLES.items() if name in requested]
