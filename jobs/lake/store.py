"""The storage half of the data lake: a pyarrow file system (local or S3) and atomic partition writes.

One partition (``<table>/date=YYYY-MM-DD``) is replaced as a whole:

- **local directory**: the new partition is written under a hidden sibling
  (``.staging-date=…-<run>``), with its ``_manifest.json``; then the old folder is renamed away
  (``.trash-…``), the staged one renamed into place, and the old one deleted. Readers never see a
  partial or doubled partition (the staging and trash folders start with ``.``, which pyarrow, polars,
  DuckDB and ClickHouse globs skip); between the two renames (microseconds) the date is absent.
- **S3** (no rename there): the new files get new names (``part-<run>-<n>.parquet``) next to the old
  ones, then ``_manifest.json`` is replaced in one PUT, then every object of the partition the manifest
  does not list is deleted. A reader that follows the manifest sees the old or the new partition, never
  a mix; a reader that lists the prefix may see old and new files together until the deletes finish.

See docs/lake.md for the guarantees as promised to readers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from jobs.lake.plan import (
    MANIFEST_NAME,
    LakeLocation,
    LakeTable,
    Manifest,
    ManifestFile,
    basename_template,
    partition_dir,
    stale_files,
)
from xpcore.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from xpcore.config import LakeSettings

__all__ = ["export_schema", "open_lake_filesystem", "read_manifest", "remove_leftovers", "write_partition"]

logger = logging.getLogger(__name__)

EXPERIMENT_COLUMN = "experiment_key"


def open_lake_filesystem(location: LakeLocation, settings: LakeSettings) -> pafs.FileSystem:
    """The pyarrow file system of the lake (secrets are revealed only here, for the client)."""
    if location.scheme == "file":
        return pafs.LocalFileSystem()
    kwargs: dict[str, object] = {}
    if settings.lake_s3_endpoint_url:
        endpoint = urlsplit(settings.lake_s3_endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise ConfigError(
                f"XP_LAKE_S3_ENDPOINT_URL {settings.lake_s3_endpoint_url!r}: use http(s)://host[:port]"
            )
        kwargs["endpoint_override"] = endpoint.netloc
        kwargs["scheme"] = endpoint.scheme
    if settings.lake_s3_region:
        kwargs["region"] = settings.lake_s3_region
    if (settings.lake_s3_access_key_id is None) != (settings.lake_s3_secret_access_key is None):
        raise ConfigError("set both XP_LAKE_S3_ACCESS_KEY_ID and XP_LAKE_S3_SECRET_ACCESS_KEY, or neither")
    if settings.lake_s3_access_key_id is not None and settings.lake_s3_secret_access_key is not None:
        kwargs["access_key"] = settings.lake_s3_access_key_id.get_secret_value()
        kwargs["secret_key"] = settings.lake_s3_secret_access_key.get_secret_value()
        if settings.lake_s3_session_token is not None:
            kwargs["session_token"] = settings.lake_s3_session_token.get_secret_value()
    return pafs.S3FileSystem(**kwargs)


def export_schema(schema: pa.Schema, table: LakeTable) -> pa.Schema:
    """The Parquet schema of ``table``: dictionaries decoded, raw-byte columns as ``binary``."""
    fields = []
    for f in schema:
        kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if f.name in table.binary_columns and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            kind = pa.binary()
        fields.append(pa.field(f.name, kind, nullable=f.nullable, metadata=f.metadata))
    return pa.schema(fields)


def _cast_batches(tables: Iterable[pa.Table], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for table in tables:
        yield from table.select(schema.names).cast(schema).to_batches()


def _relative(path: str, base: str) -> str:
    prefix = base.rstrip("/") + "/"
    if not path.startswith(prefix):  # pragma: no cover - pyarrow always writes under base_dir
        raise TransientError(f"lake file {path} is not under {base}")
    return path[len(prefix) :]


def _write_files(
    fs: pafs.FileSystem,
    base_dir: str,
    table: LakeTable,
    tables: Iterable[pa.Table],
    schema: pa.Schema,
    *,
    run_id: str,
    max_rows_per_file: int,
    compression: str,
) -> list[ManifestFile]:
    written: list[ManifestFile] = []

    def visit(written_file: ds.WrittenFile) -> None:
        rows = written_file.metadata.num_rows if written_file.metadata is not None else 0
        written.append(ManifestFile(path=_relative(written_file.path, base_dir), rows=int(rows)))

    parquet = ds.ParquetFileFormat()
    options = parquet.make_write_options(compression=None if compression == "none" else compression)
    partitioning = (
        ds.partitioning(pa.schema([pa.field(EXPERIMENT_COLUMN, pa.string())]), flavor="hive")
        if table.experiment_partition
        else None
    )
    ds.write_dataset(
        _cast_batches(tables, schema),
        base_dir,
        schema=schema,
        format=parquet,
        file_options=options,
        partitioning=partitioning,
        basename_template=basename_template(run_id),
        filesystem=fs,
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_file=max_rows_per_file,
        max_rows_per_group=min(max_rows_per_file, 128 * 1024),
        preserve_order=True,
        file_visitor=visit,
    )
    return sorted(written, key=lambda f: f.path)


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def read_manifest(fs: pafs.FileSystem, location: LakeLocation, table: str, day: dt.date) -> Manifest | None:
    """The current manifest of a partition, or ``None`` when the partition has none."""
    path = location.join(partition_dir(table, day), MANIFEST_NAME)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return Manifest.from_json(stream.read())


def _list_files(fs: pafs.FileSystem, base_dir: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(base_dir, recursive=True, allow_not_found=True))
    return [_relative(info.path, base_dir) for info in infos if info.type == pafs.FileType.File]


def write_partition(
    fs: pafs.FileSystem,
    location: LakeLocation,
    table: LakeTable,
    day: dt.date,
    tables: Iterable[pa.Table],
    schema: pa.Schema,
    *,
    run_id: str,
    max_rows_per_file: int,
    compression: str,
    now: dt.datetime,
) -> Manifest:
    """Replace the ``date=day`` partition of ``table`` with ``tables`` (streamed); returns its manifest.

    When reading or writing fails midway, the old partition is left as it was and this run's files are
    removed (best effort), then the error propagates.
    """
    final = location.join(partition_dir(table.name, day))

    def write_into(base_dir: str) -> Manifest:
        files = _write_files(
            fs,
            base_dir,
            table,
            tables,
            schema,
            run_id=run_id,
            max_rows_per_file=max_rows_per_file,
            compression=compression,
        )
        return Manifest(table=table.name, day=day, run_id=run_id, written_at=now, files=tuple(files))

    if location.scheme == "file":
        return _replace_local(fs, location, table.name, day, final, run_id, write_into)
    try:
        manifest = write_into(final)
    except BaseException:
        own = f"part-{run_id}-"
        _delete_quietly(
            fs, [f"{final}/{p}" for p in _list_files(fs, final) if p.rsplit("/", 1)[-1].startswith(own)]
        )
        raise
    _put(fs, f"{final}/{MANIFEST_NAME}", manifest.to_json())
    _delete_quietly(
        fs, [f"{final}/{stale}" for stale in stale_files(_list_files(fs, final), manifest)], strict=True
    )
    return manifest


def _replace_local(
    fs: pafs.FileSystem,
    location: LakeLocation,
    table: str,
    day: dt.date,
    final: str,
    run_id: str,
    write_into: Callable[[str], Manifest],
) -> Manifest:
    parent = location.join(table)
    staging = f"{parent}/.staging-date={day.isoformat()}-{run_id}"
    trash = f"{parent}/.trash-date={day.isoformat()}-{run_id}"
    fs.create_dir(staging, recursive=True)
    try:
        manifest = write_into(staging)
        _put(fs, f"{staging}/{MANIFEST_NAME}", manifest.to_json())
    except BaseException:
        try:
            fs.delete_dir(staging)
        except OSError:  # pragma: no cover - the next run of this date removes it
            logger.warning("could not remove a lake staging folder", extra={"path": staging})
        raise
    replaced = fs.get_file_info(final).type == pafs.FileType.Directory
    if replaced:
        fs.move(final, trash)
    fs.move(staging, final)
    if replaced:
        fs.delete_dir(trash)
    return manifest


def _delete_quietly(fs: pafs.FileSystem, paths: list[str], *, strict: bool = False) -> None:
    for path in paths:
        try:
            fs.delete_file(path)
        except OSError:
            if strict:
                raise
            logger.warning("could not delete a lake file", extra={"path": path})


def remove_leftovers(fs: pafs.FileSystem, location: LakeLocation, table: str, day: dt.date) -> None:
    """Delete staging/trash folders a crashed local run left for this partition (never read anyway)."""
    if location.scheme != "file":
        return
    parent = location.join(table)
    if fs.get_file_info(parent).type != pafs.FileType.Directory:
        return
    names = (f".staging-date={day.isoformat()}-", f".trash-date={day.isoformat()}-")
    for info in fs.get_file_info(pafs.FileSelector(parent, recursive=False)):
        if info.type == pafs.FileType.Directory and info.base_name.startswith(names):
            logger.info("removing leftover lake folder", extra={"path": info.path})
            fs.delete_dir(info.path)
