"""Export files: pages of one dataset (pyarrow Tables, same columns) written as CSV, JSON, XLSX or Parquet.

- **CSV**: a header line, RFC 4180 quoting; timestamps ISO 8601 (UTC); formula-leading text prefixed with
  ``'`` (decision 0038, as the dashboard's exports).
- **JSON**: one array of objects (JSON Lines would not be one document); timestamps ISO 8601.
- **XLSX** (openpyxl, write-only: memory stays bounded): a bold, filled header row that stays frozen when
  scrolling, column widths from the header and the first page, number formats per column type (integers
  ``#,##0``, decimals ``0.0000``, timestamps ``yyyy-mm-dd hh:mm:ss`` in UTC, said in the header), an
  auto-filter over the header; strings are string cells, never formulas. Over Excel's row limit the rows
  continue on a new sheet.
- **Parquet**: zstd, the warehouse's column types (dictionaries decoded).

Pure of the warehouse: the job hands in the pages, and a path to write to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from xpcore.formula_cells import csv_text, is_formula_text, neutralize_formula

__all__ = ["EXTENSIONS", "FORMATS", "XLSX_MAX_ROWS", "write_export_file"]

FORMATS = ("csv", "json", "xlsx", "parquet")
EXTENSIONS = {fmt: fmt for fmt in FORMATS}
XLSX_MAX_ROWS = 1_048_575
"""Data rows per worksheet (Excel's limit minus the header); more rows continue on a new sheet."""

HEADER_FILL = "DDE7F3"
MAX_WIDTH = 60


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # standard JSON only (decision 0068); an empty CSV field, an empty cell
    return value


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns (LowCardinality) decoded to their value type."""
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=table.column_names)


def _write_csv(tables: Iterable[pa.Table], path: Path) -> int:
    rows_written = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        header = False
        for table in tables:
            lines: list[list[Any]] = []
            if not header:
                lines.append(table.column_names)
                header = True
            for row in table.to_pylist():
                lines.append(
                    ["" if _plain(v) is None else neutralize_formula(_plain(v)) for v in row.values()]
                )
            rows_written += table.num_rows
            file.write(csv_text(lines))
    return rows_written


def _write_json(tables: Iterable[pa.Table], path: Path) -> int:
    rows_written = 0
    with path.open("w", encoding="utf-8") as file:
        file.write("[")
        for table in tables:
            for row in table.to_pylist():
                prefix = "," if rows_written else ""
                file.write(prefix + "\n" + json.dumps({k: _plain(v) for k, v in row.items()}))
                rows_written += 1
        file.write("\n]\n")
    return rows_written


def _write_parquet(tables: Iterable[pa.Table], path: Path) -> int:
    import pyarrow.parquet as pq

    rows_written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            decoded = _decoded(table)
            if writer is None:
                writer = pq.ParquetWriter(str(path), decoded.schema, compression="zstd")
            if decoded.num_rows:
                writer.write_table(decoded.cast(writer.schema))
                rows_written += decoded.num_rows
        if writer is None:  # no page at all: an empty file with no columns
            pq.write_table(pa.table({}), str(path), compression="zstd")
    finally:
        if writer is not None:
            writer.close()
    return rows_written


def _number_format(kind: pa.DataType) -> str | None:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_timestamp(kind):
        return "yyyy-mm-dd hh:mm:ss"
    if pa.types.is_date(kind):
        return "yyyy-mm-dd"
    if pa.types.is_integer(kind):
        return "#,##0"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "0.0000"
    return None


def _width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 19
    if isinstance(value, float):
        return 12
    return len(str(value))


class _Sheets:
    """Write-only worksheets of one workbook, a new one every :data:`XLSX_MAX_ROWS` rows."""

    def __init__(self, workbook: Any, name: str) -> None:
        self.workbook = workbook
        self.name = name
        self.part = 0
        self.sheet: Any = None
        self.written = 0
        self.header: list[str] = []
        self.formats: list[str | None] = []
        self.widths: list[int] = []

    def start(self, table: pa.Table) -> None:
        self.header = [
            f"{n} (UTC)" if pa.types.is_timestamp(t) else n
            for n, t in zip(table.column_names, table.schema.types, strict=True)
        ]
        self.formats = [_number_format(t) for t in table.schema.types]
        self.widths = [len(h) for h in self.header]
        for row in table.slice(0, 200).to_pylist():
            for i, value in enumerate(row.values()):
                self.widths[i] = max(self.widths[i], _width(value))

    def new_sheet(self) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter

        self.part += 1
        self.sheet = self.workbook.create_sheet(self.name if self.part == 1 else f"{self.name} ({self.part})")
        for i, width in enumerate(self.widths, start=1):
            self.sheet.column_dimensions[get_column_letter(i)].width = min(width + 2, MAX_WIDTH)
        self.sheet.freeze_panes = "A2"
        if self.header:
            self.sheet.auto_filter.ref = f"A1:{get_column_letter(len(self.header))}1"
        cells = []
        for title in self.header:
            cell = WriteOnlyCell(self.sheet, value=title)
            cell.data_type = "s"
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", start_color=HEADER_FILL)
            cell.alignment = Alignment(horizontal="center")
            cells.append(cell)
        self.sheet.append(cells)
        self.written = 0

    def cell(self, value: Any, number_format: str | None) -> Any:
        from openpyxl.cell import WriteOnlyCell

        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.replace(tzinfo=None)  # UTC, as the column header says
        if isinstance(value, float) and not math.isfinite(value):
            return None  # an empty cell: Excel has no NaN or infinity
        if isinstance(value, str):
            cell = WriteOnlyCell(self.sheet, value=value)
            cell.data_type = "s"  # openpyxl makes "=…" a formula and "#N/A" an error: text stays text
            if is_formula_text(value):
                cell.quotePrefix = True
            return cell
        if value is None or number_format is None or isinstance(value, bool):
            return value
        cell = WriteOnlyCell(self.sheet, value=value)
        cell.number_format = number_format
        return cell

    def append(self, row: Iterable[Any]) -> None:
        if self.sheet is None or self.written >= XLSX_MAX_ROWS:
            self.new_sheet()
        self.sheet.append([self.cell(v, f) for v, f in zip(row, self.formats, strict=True)])
        self.written += 1


def _write_xlsx(tables: Iterable[pa.Table], path: Path, sheet: str) -> int:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheets = _Sheets(workbook, sheet)
    rows_written = 0
    for table in tables:
        if not sheets.header:
            sheets.start(table)
        for row in table.to_pylist():
            sheets.append(row.values())
            rows_written += 1
    if sheets.sheet is None:
        sheets.new_sheet()  # no rows: the header alone
    workbook.save(str(path))
    return rows_written


def write_export_file(tables: Iterable[pa.Table], fmt: str, path: Path, *, sheet: str = "data") -> int:
    """Write the pages ``tables`` to ``path`` in ``fmt``; the number of data rows written."""
    if fmt == "csv":
        return _write_csv(tables, path)
    if fmt == "json":
        return _write_json(tables, path)
    if fmt == "parquet":
        return _write_parquet(tables, path)
    if fmt == "xlsx":
        return _write_xlsx(tables, path, sheet[:31] or "data")
    raise ValueError(f"unknown export format {fmt!r}")
