"""The embedded warehouse: ClickHouse's engine in-process through chDB, persistent in a directory.

Facts about chDB 4.4 this adapter is built on (checked, see docs/decisions/0002-warehouse-adapters.md):

- one engine per process, bound to one path: a second path while the first is open fails; after every
  connection is closed a new path can be opened. Several connections to the same path coexist.
- another process opening the same path fails (chDB's own ``status`` file lock), hence our ownership lock.
- ``{name:Type}`` parameters are parsed from escaped text, like ClickHouse's HTTP interface.
- ``SET readonly=…`` is per connection and cannot be undone on it: read-only queries use their own
  connection. It runs ``readonly=1``: reads only, no settings changes, and no table function that reads
  outside (``file()``, ``url()``, ``executable()``, ``filesystem()`` … are refused by the engine; checked on
  chDB 4.4, where ``readonly=2`` still reads ``file()`` and even runs ``INSERT INTO FUNCTION file(…)``).
  The scalar ``file()`` and ``INTO OUTFILE`` pass even ``readonly=1``, hence the lexical guard
  (:mod:`xpcore.warehouse.sqlguard`) in front of it. With ``XP_SQL_ALLOW_EXTERNAL`` the connection
  runs ``readonly=2`` (reads, settings, table functions) and the guard lets external functions through.
- ``allow_python_table_function`` is 1 by default (``python(name)`` reads objects of this process):
  both connections turn it off unless external access is allowed.
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

from xpcore.errors import ReadOnlyError, StoreBusyError, TerminalError, TransientError, XpError
from xpcore.warehouse.chdb.ownership import StoreLock, StoreOwner, acquire_store
from xpcore.warehouse.sqlguard import read_only_refusal
from xpcore.warehouse.sqltext import (
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

    def __init__(self, path: Path, *, wait_seconds: float = 0.0, allow_external: bool = False) -> None:
        """``allow_external``: the operator's ``XP_SQL_ALLOW_EXTERNAL`` (file(), url() … on read-only
        queries)."""
        self.path = path.resolve()
        self.location = str(self.path)
        self.allow_external = allow_external
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

    def advertise_api_url(self, api_url: str | None, api_token: str | None = None) -> None:
        """Tell other processes (of this user: the lock file is 0600) where this long-running process
        serves the store over HTTP, and the token its API requires."""
        self._require_lock().advertise(api_url, api_token)

    def _require_lock(self) -> StoreLock:
        if self._lock is None:
            raise TerminalError(f"chDB store {self.path} is closed")
        return self._lock

    def _connect(self) -> Any:
        import chdb

        try:
            conn = chdb.connect(str(self.path))
        except RuntimeError as error:
            raise _translate(error, self.path) from None
        if not self.allow_external:
            try:
                conn.query("SET allow_python_table_function = 0", "CSV")
            except RuntimeError as error:
                conn.close()
                raise _translate(error, self.path) from None
        return conn

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
        """Run a query and return a pyarrow Table; ``read_only`` runs it on the read-only connection
        (``readonly=1``) after the lexical guard (a :class:`ReadOnlyError` names what it refused)."""
        import pyarrow as pa

        if read_only:
            refusal = read_only_refusal(sql, allow_external=self.allow_external)
            if refusal is not None:
                raise ReadOnlyError(f"refused on a read-only path: {refusal}")

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
                    conn.query(f"SET readonly = {2 if self.allow_external else 1}", "CSV")
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
