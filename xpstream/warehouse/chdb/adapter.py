"""The embedded warehouse: ClickHouse's engine in-process through chDB, persistent in a directory.

Facts about chDB 4.4 this adapter is built on (checked, see docs/decisions/0002-warehouse-adapters.md):

- one engine per process, bound to one path: a second path while the first is open fails; after every
  connection is closed a new path can be opened. Several connections to the same path coexist.
- another process opening the same path fails (chDB's own ``status`` file lock), hence our ownership lock.
- ``{name:Type}`` parameters are parsed from escaped text, like ClickHouse's HTTP interface.
- ``SET readonly=2`` is per connection and cannot be undone on it: read-only queries use their own
  connection.
- ``INSERT … SETTINGS insert_deduplication_token=…`` with the data streamed as ``ArrowStream`` deduplicates
  on MergeTree tables that set ``non_replicated_deduplication_window``.

Threads (`xp up` shares one engine between the stream worker, the scheduler's jobs, the dashboard and
the warehouse API): each ``ChdbWarehouse`` serialises the use of each of its connections with a lock, so
one instance can be shared by threads; separate instances (separate connections) run concurrently, which
chDB 4.4 handles (checked: four threads inserting and reading on two connections, exact counts).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xpstream.errors import StoreBusyError, TerminalError, TransientError, XpError
from xpstream.warehouse.chdb.ownership import StoreLock, StoreOwner, acquire_store
from xpstream.warehouse.sqltext import (
    TRANSIENT_ERROR_CODES,
    error_code,
    one_line_error,
    qualified_table,
    quote_identifier,
    render_parameters,
    string_literal,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ChdbWarehouse", "insert_statement"]

logger = logging.getLogger(__name__)

_STATUS_PID = re.compile(r"PID:\s*(\d+)")


def insert_statement(table: str, columns: list[str], dedup_token: str | None) -> str:
    """The ``INSERT`` head sent before the Arrow stream (pure; unit-tested)."""
    database, name = qualified_table(table)
    target = f"{quote_identifier(database)}.{quote_identifier(name)}"
    column_list = ", ".join(quote_identifier(c) for c in columns)
    settings = f" SETTINGS insert_deduplication_token={string_literal(dedup_token)}" if dedup_token else ""
    return f"INSERT INTO {target} ({column_list}){settings}"


def _translate(error: Exception, path: Path) -> XpError:
    message = str(error)
    if "already initialized with path" in message:
        return TerminalError(
            f"cannot open chDB store {path}: this process already has another store open "
            "(chDB runs one store per process)"
        )
    if "Error initializing EmbeddedServer" in message or "Cannot lock file" in message:
        return StoreBusyError(_foreign_owner_message(path, message))
    code = error_code(message)
    line = one_line_error(message)
    return TransientError(line) if code in TRANSIENT_ERROR_CODES else TerminalError(line)


def _foreign_owner_message(path: Path, message: str) -> str:
    try:
        match = _STATUS_PID.search((path / "status").read_text())
    except OSError:
        match = None
    who = f"pid {match.group(1)}" if match else "another process"
    return (
        f"cannot open chDB store {path}: it is locked by {who}, which is not an xp command "
        f"holding the store lock ({one_line_error(message)})"
    )


class ChdbWarehouse:
    """A chDB store in a directory; one per process at a time (see :mod:`.ownership`)."""

    kind = "chdb"

    def __init__(self, path: Path, *, wait_seconds: float = 0.0) -> None:
        self.path = path.resolve()
        self.location = str(self.path)
        self._lock: StoreLock | None = acquire_store(self.path, wait_seconds=wait_seconds)
        self._read_only: Any = None
        self._write_lock = threading.RLock()
        self._read_lock = threading.RLock()
        try:
            self._conn = self._connect()
        except BaseException:
            self._lock.release()
            self._lock = None
            raise

    @property
    def owner(self) -> StoreOwner:
        """What this process advertises in the store's lock file."""
        return self._require_lock().owner

    def advertise_api_url(self, api_url: str | None) -> None:
        """Tell other processes where this (long-running) process serves the store over HTTP."""
        self._require_lock().advertise(api_url)

    def _require_lock(self) -> StoreLock:
        if self._lock is None:
            raise TerminalError(f"chDB store {self.path} is closed")
        return self._lock

    def _connect(self) -> Any:
        import chdb

        try:
            return chdb.connect(str(self.path))
        except RuntimeError as error:
            raise _translate(error, self.path) from None

    def _run(self, conn: Any, sql: str, fmt: str, parameters: Mapping[str, Any] | None) -> Any:
        self._require_lock()
        params = render_parameters(sql, parameters)
        try:
            with self._read_lock if conn is self._read_only else self._write_lock:
                return conn.query(sql, fmt, params=params)
        except RuntimeError as error:
            raise _translate(error, self.path) from None

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows."""
        self._run(self._conn, sql, "CSV", parameters)

    def query_arrow(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> pa.Table:
        """Run a query and return a pyarrow Table; ``read_only`` runs it on a ``readonly=2`` connection."""
        import pyarrow as pa

        conn = self._read_only_connection() if read_only else self._conn
        if conn is None:
            raise TerminalError(f"chDB store {self.path} is closed")
        # "Arrow" (IPC file bytes) rather than chDB's "ArrowTable", which imports pandas (~2 s).
        result = self._run(conn, sql, "Arrow", parameters)
        if len(result) == 0:
            return pa.Table.from_batches([], schema=pa.schema([]))
        return pa.ipc.open_file(pa.py_buffer(result.bytes())).read_all()

    def _read_only_connection(self) -> Any:
        with self._read_lock:
            if self._read_only is None:
                self._require_lock()
                conn = self._connect()
                try:
                    conn.query("SET readonly = 2", "CSV")
                except RuntimeError as error:
                    conn.close()
                    raise _translate(error, self.path) from None
                self._read_only = conn
            return self._read_only

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        """Stream ``data`` as ArrowStream into ``table``; columns are matched by name."""
        import pyarrow as pa

        self._require_lock()
        sql = insert_statement(table, data.column_names, dedup_token)
        if data.num_rows == 0:
            return 0
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        with self._write_lock:
            try:
                inserter = self._conn.send_insert(sql, "ArrowStream")
            except RuntimeError as error:
                raise _translate(error, self.path) from None
            try:
                inserter.append(sink.getvalue().to_pybytes())
                inserter.finish()
            except RuntimeError as error:
                with contextlib.suppress(RuntimeError):
                    inserter.cancel()
                raise _translate(error, self.path) from None
        return int(data.num_rows)

    def close(self) -> None:
        """Close the connections and release the store (idempotent; waits for a query in flight)."""
        with self._write_lock, self._read_lock:
            for conn in (self._read_only, getattr(self, "_conn", None)):
                if conn is not None:
                    try:
                        conn.close()
                    except RuntimeError:  # pragma: no cover - closing a broken connection
                        logger.debug("closing a chDB connection failed", exc_info=True)
            self._read_only = None
            self._conn = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ChdbWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
