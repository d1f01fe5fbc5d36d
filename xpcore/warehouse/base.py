"""The one warehouse interface; adapters live in ``chdb/`` (embedded) and ``clickhouse/`` (server).

SQL is ClickHouse SQL, identical for both adapters. Parameters are bound with ClickHouse's native
``{name:Type}`` placeholders and passed separately, never formatted into the SQL text; both adapters
render values the same way (:func:`xpcore.warehouse.sqltext.render_parameter`: datetimes in UTC with
microseconds, containers as ClickHouse literals). Errors: unreachable/timeouts raise
:class:`~xpcore.errors.TransientError`, everything else :class:`~xpcore.errors.TerminalError` with the
server's message on one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Warehouse"]


@runtime_checkable
class Warehouse(Protocol):
    """A ClickHouse engine we can query and load, embedded (chDB) or remote (server)."""

    kind: str
    """``"chdb"`` or ``"clickhouse"``."""

    location: str
    """Path of the embedded store or URL of the server (never with secrets)."""

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT … SELECT, SET, OPTIMIZE)."""
        ...

    def query_arrow(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, read_only: bool = False
    ) -> pa.Table:
        """Run a query and return its rows as a pyarrow Table.

        ``read_only``: have the engine itself refuse anything that writes (ClickHouse ``readonly=2``);
        `xp sql` without ``--write`` uses it.
        """
        ...

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        """Insert a pyarrow Table into ``table`` (``db.name``); returns rows sent.

        ``dedup_token``: a deterministic insert-deduplication token; re-sending the same token with the
        same data is a no-op on tables that keep deduplication windows (exactly-once loading).
        """
        ...

    def close(self) -> None:
        """Release the store or connection."""
        ...
