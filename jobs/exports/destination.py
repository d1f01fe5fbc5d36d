"""Where export files go: a local directory or S3 (the lake's S3 settings and client), written atomically.

The file is first written whole to a local temporary file (formats need a seekable file, XLSX a complete
one), then:

- **local directory**: copied into a hidden temporary name in the destination directory (``.…part``),
  flushed, then linked to its final name; linking fails instead of replacing an existing file, so a run
  never overwrites another silently. Readers see the whole file or none.
- **S3**: uploaded under a hidden staging key (``.…part``, removed if the upload fails), then copied to
  its final key server-side and the staging object deleted: the final object appears whole or not at
  all (S3's single-copy limit: 5 GB per file). An existing object of the same name is refused first.

File names carry the export name, the window and the run's start (``UTC``) plus a short random part,
so two runs never aim at the same name (:func:`export_file_name`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.lake.plan import LakeLocation, parse_lake_url
from jobs.lake.store import open_lake_filesystem
from xpcore.errors import ConfigError, TerminalError, TransientError

if TYPE_CHECKING:
    from xpcore.config import LakeSettings

__all__ = ["Destination", "export_file_name", "open_destination"]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def export_file_name(
    name: str, extension: str, started: datetime, window: tuple[datetime, datetime] | None, token: str
) -> str:
    """``<name>_<since>_<until>_run<start>-<token>.<ext>`` (windowed exports) or
    ``<name>_run<start>-<token>.<ext>`` (snapshots); times as ``YYYYmmddTHHMMSSZ``."""
    span = f"_{_stamp(window[0])}_{_stamp(window[1])}" if window is not None else ""
    return f"{name}{span}_run{_stamp(started)}-{token}.{extension}"


class Destination:
    """A folder (local or S3) export files are put into."""

    def __init__(self, location: LakeLocation, settings: LakeSettings) -> None:
        self.location = location
        self.settings = settings

    @property
    def url(self) -> str:
        return self.location.url

    def put(self, local: Path, folder: str, file_name: str) -> str:
        """Put the finished file ``local`` at ``<destination>/<folder>/<file_name>``; its URL."""
        if self.location.scheme == "file":
            return self._put_local(local, Path(self.location.root) / folder, file_name)
        return self._put_s3(local, f"{self.location.root}/{folder}/{file_name}")

    def _put_local(self, local: Path, directory: Path, file_name: str) -> str:
        final = directory / file_name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            staging = directory / f".{file_name}.{uuid.uuid4().hex[:8]}.part"
            try:
                with local.open("rb") as source, staging.open("xb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                    target.flush()
                    os.fsync(target.fileno())
                os.link(staging, final)  # fails if the name exists: never a silent overwrite
            finally:
                staging.unlink(missing_ok=True)
        except FileExistsError:
            raise TerminalError(f"export file {final} exists already: not overwritten") from None
        except OSError as error:
            raise TransientError(f"writing {final} failed: {error.strerror or error}") from error
        return f"file://{final}"

    def _put_s3(self, local: Path, key: str) -> str:
        import pyarrow.fs as pafs

        fs = open_lake_filesystem(self.location, self.settings)
        folder, _, name = key.rpartition("/")
        staging = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.part"
        try:
            if fs.get_file_info(key).type != pafs.FileType.NotFound:
                raise TerminalError(f"export object s3://{key} exists already: not overwritten")
            with local.open("rb") as source, fs.open_output_stream(staging) as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
            fs.move(staging, key)  # one server-side copy: the final object appears whole
        except OSError as error:  # pyarrow's S3 errors
            with contextlib.suppress(OSError):
                fs.delete_file(staging)
            message = " ".join(str(error).split())
            raise TransientError(f"writing s3://{key} failed: {message}") from error
        return f"s3://{key}"


def open_destination(url: str, settings: LakeSettings, *, export: str) -> Destination:
    """The destination ``url`` (a directory, ``file:///…`` or ``s3://bucket/prefix``)."""
    try:
        location = parse_lake_url(url, cwd=str(Path.cwd()))
    except ConfigError as error:
        detail = str(error).split(": ", 1)[-1]
        raise ConfigError(f"export {export!r}: destination {url!r}: {detail}") from None
    return Destination(location, settings)
