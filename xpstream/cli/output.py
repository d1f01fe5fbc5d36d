"""Printing results for people (rich tables) and machines (JSON, CSV)."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["OutputFormat", "print_json", "print_rows"]


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


def print_json(data: Any) -> None:
    """One compact JSON document on stdout."""
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False) + "\n")


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: OutputFormat) -> None:
    """Rows as a rich table, a JSON array of objects, or CSV with a header."""
    if fmt is OutputFormat.json:
        print_json([dict(row) for row in rows])
        return
    if fmt is OutputFormat.csv:
        from xpcore.formula_cells import csv_text

        sys.stdout.write(csv_text([list(columns), *([_csv_cell(row[c]) for c in columns] for row in rows)]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("NULL" if row[c] is None else _cell(row[c]) for c in columns))
    Console().print(table)
