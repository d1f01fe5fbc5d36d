"""The dashboards' SQL: named files in ``sql/dashboards/`` (shared with Grafana), run with bound parameters.

Every page query is a file ``sql/dashboards/NAME.sql`` with a header comment (grain, time column, engine)
and ClickHouse ``{name:Type}`` placeholders; :func:`run_query` binds them and returns plain rows.
Tables another issue owns (``xp.dq_results``, ``xp.alerts``) may not exist yet: :func:`run_optional`
answers ``None`` for a missing table instead of failing, so pages render an empty state.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xpcore.errors import TerminalError
from xpcore.warehouse import load_query
from xpcore.warehouse.migrations import QUERIES_DIR

if TYPE_CHECKING:
    from xpcore.warehouse import Warehouse

__all__ = ["DASHBOARD_SQL_DIR", "QueryRunner", "dashboard_query", "query_names", "query_parameters"]

DASHBOARD_SQL_DIR = QUERIES_DIR.parent / "dashboards"
"""``sql/dashboards/``: one file per page query."""

_PARAMETER = re.compile(r"\{(\w+):([^{}]+)\}")
_MISSING_TABLE = ("UNKNOWN_TABLE", "doesn't exist", "does not exist", "UNKNOWN_DATABASE")


def query_names(directory: Path = DASHBOARD_SQL_DIR) -> list[str]:
    """Names of every dashboard query file, sorted."""
    return sorted(path.stem for path in directory.glob("*.sql"))


@cache
def dashboard_query(name: str) -> str:
    """The text of ``sql/dashboards/NAME.sql`` (read once per process)."""
    return load_query(name, DASHBOARD_SQL_DIR)


def query_parameters(sql: str) -> dict[str, str]:
    """Placeholder name → ClickHouse type of every ``{name:Type}`` in ``sql``."""
    return {name: type_.strip() for name, type_ in _PARAMETER.findall(sql)}


class QueryRunner:
    """Runs dashboard queries on one warehouse, one at a time, on its read-only connection (``readonly=2``:
    the pages only read, and on chDB that connection is not the one inserts and result computations use,
    so a page does not wait for them)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._lock = threading.Lock()

    def sql(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of an arbitrary read-only statement (used for the bench baseline and small lookups)."""
        with self._lock:
            table = self.warehouse.query_arrow(sql, parameters, read_only=True)
        return table.to_pylist()

    def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of the named query."""
        return self.sql(dashboard_query(name), parameters)

    def arrow(self, name: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """The named query's result as a pyarrow Table (exports)."""
        with self._lock:
            return self.warehouse.query_arrow(dashboard_query(name), parameters, read_only=True)

    def run_optional(
        self, name: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]] | None:
        """Rows of the named query, or None when a table it reads does not exist (yet)."""
        try:
            return self.run(name, parameters)
        except TerminalError as error:
            if any(marker in str(error) for marker in _MISSING_TABLE):
                return None
            raise

    def locked(self) -> threading.Lock:
        """The lock that serialises warehouse calls (for code paths outside this runner)."""
        return self._lock
