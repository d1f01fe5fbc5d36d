"""The spool: the service's write-ahead log of records for Kafka, replayed in order after an outage.

Every record the service accepts is appended here *before* it is handed to the producer and before
the request is answered (decision 0041), so a ``kill -9`` at any moment loses nothing acknowledged:
the bytes are in the kernel's page cache after ``write()``. The file is fsynced every
``XP_SPOOL_FSYNC_INTERVAL`` seconds (and when a segment is closed), which bounds what a power loss
or kernel crash can take. Delivered records are released by moving the replay cursor past them.

Files (``$XP_HOME/spool/``, directory 0700, files 0600): segments ``service-<offset>.jsonl`` (the
global byte offset of their first line in the name), one record per line, UTF-8::

    {"topic":"xp.exposures","key":"u1","value":{...the encoded record, byte for byte...}}

``topic`` is the logical topic (without the deployment's prefix), ``key`` the Kafka key (or null),
``value`` the exact bytes that would have been produced (compact JSON records contain no raw newline).
The replay cursor (``service.pos``) holds the global offset of the first line not known delivered and
is replaced atomically when it moves; segments wholly before it are deleted. A new segment starts when
the current one passes :data:`SEGMENT_BYTES`, or when everything has been delivered.

A crash between delivery and the cursor write re-sends what was delivered after the cursor; records
keep their ids (``exposure_id``, ``event_id``), so the stream's deduplication absorbs the overlap. A
torn last line (crash mid-write) is cut off when the spool is opened. ``max_bytes`` bounds the
records not yet delivered: an append beyond it raises :class:`SpoolFull`.

Not thread-safe by itself: :class:`~assignment.service.exposures.KafkaSink` serialises access.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from xpcore.errors import ConfigError

__all__ = ["SEGMENT_BYTES", "Spool", "SpoolEntry", "SpoolFull", "decode_line", "encode_line"]

logger = logging.getLogger(__name__)


SEGMENT_BYTES = 16 * 1024 * 1024
"""A segment is closed (and fsynced) once it holds this many bytes."""


class SpoolFull(Exception):
    """The records not yet delivered already take ``max_bytes``."""


class _Line(msgspec.Struct):
    topic: str
    key: str | None
    value: msgspec.Raw


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled record, and where its line ends in the file (the cursor after it)."""

    topic: str
    key: str | None
    value: bytes
    end_offset: int = 0


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Line)


def encode_line(topic: str, key: str | None, value: bytes) -> bytes:
    """One spool line (with its newline). ``value`` must be one compact JSON value."""
    if b"\n" in value:
        raise ValueError("a spooled value must be compact JSON without newlines")
    return _ENCODER.encode(_Line(topic, key, msgspec.Raw(value))) + b"\n"


def decode_line(line: bytes) -> tuple[str, str | None, bytes]:
    """Topic, key and value bytes of one spool line (ValueError if it is not one)."""
    try:
        parsed = _DECODER.decode(line)
    except msgspec.DecodeError as error:
        raise ValueError(f"corrupt spool line: {error}") from None
    return parsed.topic, parsed.key, bytes(parsed.value)


class Spool:
    """Segmented append-only write-ahead log plus replay cursor, locked to one process."""

    def __init__(
        self,
        directory: Path,
        name: str = "service",
        *,
        max_bytes: int = 0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.name = name
        self.cursor_path = directory / f"{name}.pos"
        self._legacy_path = directory / f"{name}.jsonl"
        self._lock_path = directory / f"{name}.lock"
        self._lock_file: IO[bytes] | None = None
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[int] = []  # base offsets, oldest first; the last one is written
        self._fd: int | None = None
        self._dirty = False
        self.cursor = 0
        self.size = 0

    def _segment_path(self, base: int) -> Path:
        return self.directory / f"{self.name}-{base:016d}.jsonl"

    @property
    def path(self) -> Path:
        """The segment being written."""
        return self._segment_path(self._segments[-1] if self._segments else self.size)

    # lifecycle -----------------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the spool for this process, cut a torn last line, load the cursor."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        lock_file = os.fdopen(os.open(self._lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise ConfigError(
                f"the spool {self.directory} is used by another running service; give this one its own "
                "XP_SPOOL_DIR"
            ) from None
        self._lock_file = lock_file
        prefix = f"{self.name}-"
        bases = sorted(
            int(p.name[len(prefix) : -len(".jsonl")])
            for p in self.directory.glob(f"{prefix}*.jsonl")
            if p.name[len(prefix) : -len(".jsonl")].isdigit()
        )
        if not bases and self._legacy_path.exists():  # a spool of the single-file format
            os.replace(self._legacy_path, self._segment_path(0))
            bases = [0]
        for base in bases:
            os.chmod(self._segment_path(base), 0o600)
        self._segments = bases
        if bases:
            last = self._segment_path(bases[-1])
            self._cut_torn_tail(last)
            self.size = bases[-1] + last.stat().st_size
        else:
            self.size = self._read_cursor()
        self.cursor = min(max(self._read_cursor(), bases[0] if bases else 0), self.size)
        if not bases:
            self._segments.append(self.size)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._drop_delivered_segments()

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Spool:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing -------------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes not yet delivered."""
        return self.size - self.cursor

    @property
    def empty(self) -> bool:
        return self.size <= self.cursor

    def append(self, topic: str, key: str | None, value: bytes) -> int:
        """Append one record; the offset just after it."""
        return self.append_many([(topic, key, value)])[-1]

    def append_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> list[int]:
        """Append records with one ``write()`` (in the page cache when this returns, so a process
        crash keeps them; not fsynced: see :meth:`sync`); the offset just after each record.
        Raises :class:`SpoolFull` (and writes nothing) beyond ``max_bytes`` pending."""
        assert self._fd is not None, "spool not open"
        lines = [encode_line(topic, key, value) for topic, key, value in records]
        data = b"".join(lines)
        if self.max_bytes and self.pending_bytes + len(data) > self.max_bytes:
            raise SpoolFull(f"{self.pending_bytes} bytes pending (max {self.max_bytes})")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        ends: list[int] = []
        offset = self.size
        for line in lines:
            offset += len(line)
            ends.append(offset)
        self.size = offset
        self._dirty = True
        if self.size - self._segments[-1] >= self.segment_bytes:
            self._roll()
        return ends

    def sync(self) -> None:
        """fsync what was appended since the last sync (the caller decides how often)."""
        if self._fd is not None and self._dirty:
            self._dirty = False
            os.fsync(self._fd)

    def sync_handle(self) -> int | None:
        """A duplicate of the written segment's descriptor, to fsync (and close) without the lock."""
        if self._fd is None or not self._dirty:
            return None
        self._dirty = False
        return os.dup(self._fd)

    def _roll(self, *, sync: bool = True) -> None:
        """Close the written segment (fsynced unless delivered already) and start one at the end."""
        assert self._fd is not None
        if sync:
            self.sync()
        os.close(self._fd)
        self._segments.append(self.size)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    # reading and replay --------------------------------------------------------------------------

    def read_batch(self, max_records: int, start: int | None = None) -> list[SpoolEntry]:
        """Up to ``max_records`` entries from ``start`` (default: the cursor), in file order.

        Corrupt lines are skipped with a warning (they cannot be replayed; the count is logged)."""
        offset = self.cursor if start is None else start
        entries: list[SpoolEntry] = []
        for index, base in enumerate(self._segments):
            end = self._segments[index + 1] if index + 1 < len(self._segments) else self.size
            if offset >= end or len(entries) >= max_records:
                continue
            offset = max(offset, base)
            with self._segment_path(base).open("rb") as reader:
                reader.seek(offset - base)
                while len(entries) < max_records and offset < end:
                    line = reader.readline()
                    if not line.endswith(b"\n"):
                        break  # not fully written yet
                    offset += len(line)
                    try:
                        topic, key, value = decode_line(line)
                    except ValueError as error:
                        logger.warning(
                            "skipping a corrupt spool line at byte %d: %s", offset - len(line), error
                        )
                        continue
                    entries.append(SpoolEntry(topic, key, value, offset))
        return entries

    def advance(self, offset: int) -> None:
        """Move the cursor past delivered lines (atomically persisted); drop delivered segments."""
        cursor = max(self.cursor, min(offset, self.size))
        if cursor == self.cursor:
            return
        self.cursor = cursor
        if self.cursor >= self.size and self.size > self._segments[-1]:
            self._roll(sync=False)  # everything delivered: the written segment can go too
        tmp = self.cursor_path.with_suffix(".pos.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f"{self.cursor}\n")
        os.replace(tmp, self.cursor_path)
        self._drop_delivered_segments()

    def _drop_delivered_segments(self) -> None:
        while len(self._segments) > 1 and self._segments[1] <= self.cursor:
            self._segment_path(self._segments.pop(0)).unlink(missing_ok=True)

    def _read_cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _cut_torn_tail(self, path: Path) -> None:
        size = path.stat().st_size
        if size == 0:
            return
        with path.open("rb") as reader:
            reader.seek(max(0, size - 65536))
            tail = reader.read()
        if tail.endswith(b"\n"):
            return
        last_newline = tail.rfind(b"\n")
        keep = size - len(tail) + last_newline + 1 if last_newline >= 0 else 0
        if last_newline < 0 and size > 65536:
            keep = self._scan_last_newline(path)
        logger.warning("cutting a torn last line from %s (%d bytes)", path, size - keep)
        os.truncate(path, keep)

    @staticmethod
    def _scan_last_newline(path: Path) -> int:
        keep = 0
        with path.open("rb") as reader:
            offset = 0
            for line in reader:
                offset += len(line)
                if line.endswith(b"\n"):
                    keep = offset
        return keep
