"""Printing results for people (rich tables) and machines (JSON, CSV)."""

from __future__ import annotations

import enum
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["OutputFormat", "console", "json_safe", "print_json", "print_rows"]

WIDE_OFF_TERMINAL = 1_000
"""Columns a table may take when stdout is not a terminal (a pipe or file): rows are never squeezed."""


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _plain(value: Any) -> Any:
    """Timestamps as ISO-8601 (as in JSON), everything else unchanged."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _cell(value: Any) -> str:
    """One value as text for a CSV or table cell: containers as JSON, the rest as ``str``."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=_default, ensure_ascii=False)
    return str(_default(value)) if isinstance(value, bytes) else str(value)


def _csv_cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading ' (decision 0038)."""
    from xpcore.formula_cells import neutralize_formula

    if value is None:
        return ""
    text = _cell(_plain(value))
    return str(neutralize_formula(text)) if isinstance(value, str | bytes) else text


def json_safe(data: Any) -> Any:
    """``data`` with NaN and ±Infinity as ``null``: JSON has no such numbers, and a reader would choke."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(value) for value in data]
    if hasattr(data, "item") and not isinstance(data, str | bytes):  # numpy scalars
        return json_safe(data.item())
    return data


def print_json(data: Any) -> None:
    """One compact JSON document on stdout; non-finite numbers are ``null`` (standard JSON only)."""
    text = json.dumps(json_safe(data), default=_default, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")


def console(*, stderr: bool = False, **options: Any) -> Any:
    """A rich Console; off a terminal it may be wide, so piped tables keep whole cells (not "checko…")."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty():
        options.setdefault("width", WIDE_OFF_TERMINAL)
    return Console(stderr=stderr, **options)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: OutputFormat) -> None:
    """Rows as a rich table, a JSON array of objects, or CSV with a header."""
    if fmt is OutputFormat.json:
        print_json([dict(row) for row in rows])
        return
    if fmt is OutputFormat.csv:
        from xpcore.formula_cells import csv_text

        sys.stdout.write(csv_text([list(columns), *([_csv_cell(row[c]) for c in columns] for row in rows)]))
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("NULL" if row[c] is None else _cell(row[c]) for c in columns))
    console().print(table)
