"""The spool: an append-only file of records Kafka did not take, replayed in order when it returns.

Format (``$XP_HOME/spool/service.jsonl``), one record per line, UTF-8::

    {"topic":"xp.exposures","key":"u1","value":{...the encoded record, byte for byte...}}

``topic`` is the logical topic (without the deployment's prefix), ``key`` the Kafka key (or null),
``value`` the exact bytes that would have been produced (compact JSON records contain no raw newline).
The replay cursor (``service.pos``) holds the byte offset of the first line not yet delivered and is
replaced atomically after every delivered batch. When the cursor reaches the end, both files are reset.

A crash between delivery and the cursor write re-sends at most one batch; records keep their ids
(``exposure_id``, ``event_id``), so the stream's deduplication absorbs the overlap. A torn last line
(crash mid-write) is cut off when the spool is opened.

Not thread-safe by itself: :class:`~assignment.service.exposures.KafkaSink` serialises access.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from xpstream.errors import ConfigError

__all__ = ["Spool", "SpoolEntry", "decode_line", "encode_line"]

logger = logging.getLogger(__name__)


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
    """Append-only spool file plus replay cursor, locked to one process."""

    def __init__(self, directory: Path, name: str = "service") -> None:
        self.directory = directory
        self.path = directory / f"{name}.jsonl"
        self.cursor_path = directory / f"{name}.pos"
        self._lock_path = directory / f"{name}.lock"
        self._lock_file: IO[bytes] | None = None
        self._file: IO[bytes] | None = None
        self.cursor = 0
        self.size = 0

    # lifecycle -----------------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the spool for this process, cut a torn last line, load the cursor."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_file = self._lock_path.open("ab")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise ConfigError(
                f"the spool {self.path} is used by another running service; give this one its own "
                "XP_SPOOL_DIR"
            ) from None
        self._lock_file = lock_file
        self._file = self.path.open("ab")
        self._cut_torn_tail()
        self.size = self.path.stat().st_size
        self.cursor = min(self._read_cursor(), self.size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
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
        """Bytes not yet replayed."""
        return self.size - self.cursor

    @property
    def empty(self) -> bool:
        return self.size <= self.cursor

    def append(self, topic: str, key: str | None, value: bytes) -> None:
        """Append one record (written through to the OS, so a process crash keeps it)."""
        assert self._file is not None, "spool not open"
        line = encode_line(topic, key, value)
        self._file.write(line)
        self._file.flush()
        self.size += len(line)

    # reading and replay --------------------------------------------------------------------------

    def read_batch(self, max_records: int, start: int | None = None) -> list[SpoolEntry]:
        """Up to ``max_records`` entries from ``start`` (default: the cursor), in file order.

        Corrupt lines are skipped with a warning (they cannot be replayed; the count is logged)."""
        offset = self.cursor if start is None else start
        entries: list[SpoolEntry] = []
        if offset >= self.size:
            return entries
        with self.path.open("rb") as reader:
            reader.seek(offset)
            while len(entries) < max_records and offset < self.size:
                line = reader.readline()
                if not line.endswith(b"\n"):
                    break  # not fully written yet
                offset += len(line)
                try:
                    topic, key, value = decode_line(line)
                except ValueError as error:
                    logger.warning("skipping a corrupt spool line at byte %d: %s", offset - len(line), error)
                    continue
                entries.append(SpoolEntry(topic, key, value, offset))
        return entries

    def advance(self, offset: int) -> None:
        """Move the cursor past delivered lines (atomically persisted); reset the files when drained."""
        self.cursor = max(self.cursor, min(offset, self.size))
        if self.cursor >= self.size:
            self._reset()
            return
        tmp = self.cursor_path.with_suffix(".pos.tmp")
        tmp.write_text(f"{self.cursor}\n")
        os.replace(tmp, self.cursor_path)

    def _reset(self) -> None:
        assert self._file is not None
        self._file.truncate(0)
        self._file.seek(0)
        self.size = 0
        self.cursor = 0
        self.cursor_path.unlink(missing_ok=True)

    def _read_cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _cut_torn_tail(self) -> None:
        size = self.path.stat().st_size
        if size == 0:
            return
        with self.path.open("rb") as reader:
            reader.seek(max(0, size - 65536))
            tail = reader.read()
        if tail.endswith(b"\n"):
            return
        last_newline = tail.rfind(b"\n")
        keep = size - len(tail) + last_newline + 1 if last_newline >= 0 else 0
        if last_newline < 0 and size > 65536:
            keep = self._scan_last_newline(size)
        logger.warning("cutting a torn last line from %s (%d bytes)", self.path, size - keep)
        os.truncate(self.path, keep)

    def _scan_last_newline(self, size: int) -> int:
        keep = 0
        with self.path.open("rb") as reader:
            offset = 0
            for line in reader:
                offset += len(line)
                if line.endswith(b"\n"):
                    keep = offset
        return keep
