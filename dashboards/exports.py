"""Exports of results and daily aggregates as CSV, JSON, Parquet and XLSX, streamed in chunks.

Datasets (per experiment):

- ``results``: the results now, one row per metric × variation (the `xp results --format json` values);
- ``snapshots``: every stored ``xp.results`` snapshot;
- ``daily``: ``xp.daily_metrics`` (ETL daily aggregates).

Large datasets are read page by page (``LIMIT … OFFSET`` over a stable ``ORDER BY``,
``dashboard_export_batch_rows`` rows per page) and each page is encoded and sent before the next is read,
so memory stays bounded by one page whatever the size (docs/decisions/0013-dashboard-exports.md).
XLSX goes through openpyxl's write-only mode into a temporary file, then streams that file.

Text a spreadsheet would evaluate (starting with ``=``, ``+``, ``-``, ``@``, tab, CR) is neutralised:
prefixed with ``'`` in CSV (OWASP CSV-injection guidance); in XLSX every string is written as a string
cell, never a formula, and formula-leading text also gets the quote prefix style, so editing the cell keeps
it text (:mod:`xpcore.formula_cells`, decision 0038). Numbers, negative ones included, stay numbers.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from xpcore.errors import ValidationError
from xpcore.formula_cells import csv_text, is_formula_text, neutralize_formula

__all__ = [
    "DATASETS",
    "FORMATS",
    "encode",
    "media_type",
    "paged_tables",
    "result_rows_table",
]

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
DATASETS = ("results", "snapshots", "daily")
XLSX_MAX_ROWS = 1_048_575
"""Data rows per worksheet (Excel's limit minus the header); more rows continue on a new sheet."""

RESULT_COLUMNS = [
    ("experiment", pa.string()),
    ("computed_at", pa.timestamp("ms", tz="UTC")),
    ("method", pa.string()),
    ("metric", pa.string()),
    ("metric_type", pa.string()),
    ("role", pa.string()),
    ("variation_id", pa.int64()),
    ("variation_key", pa.string()),
    ("variation_name", pa.string()),
    ("units", pa.int64()),
    ("mean", pa.float64()),
    ("estimate", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("p_value", pa.float64()),
    ("chance_to_win", pa.float64()),
    ("significant", pa.bool_()),
    ("error", pa.string()),
    ("srm_p_value", pa.float64()),
]


def media_type(fmt: str) -> str:
    """The Content-Type of an export format; ValidationError for an unknown one."""
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return FORMATS[fmt]


def result_rows_table(document: dict[str, Any]) -> pa.Table:
    """An `xp results --format json` document as one row per metric × variation."""
    computed_at = datetime.fromisoformat(document["computed_at"])
    rows = [
        {
            "experiment": document["experiment"],
            "computed_at": computed_at,
            "method": document["method"],
            "metric": metric["metric"],
            "metric_type": metric["type"],
            "role": metric["role"],
            "variation_id": variant["variation_id"],
            "variation_key": variant["key"],
            "variation_name": variant["name"],
            "units": variant["units"],
            "mean": variant["mean"],
            "estimate": variant["estimate"],
            "ci_low": variant["ci_low"],
            "ci_high": variant["ci_high"],
            "p_value": variant["p_value"],
            "chance_to_win": variant["chance_to_win"],
            "significant": variant["significant"],
            "error": variant["error"],
            "srm_p_value": document["srm_p_value"],
        }
        for metric in document["metrics"]
        for variant in metric["variants"]
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema(RESULT_COLUMNS))


def paged_tables(fetch_page: Callable[[int, int], pa.Table], batch_rows: int) -> Iterator[pa.Table]:
    """Pages of ``fetch_page(limit, offset)`` until one comes back short (at least one page is yielded)."""
    offset = 0
    while True:
        page = fetch_page(batch_rows, offset)
        yield page
        if page.num_rows < batch_rows:
            return
        offset += page.num_rows


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return neutralize_formula(value)


def _csv_chunks(tables: Iterable[pa.Table]) -> Iterator[bytes]:
    header_written = False
    for table in tables:
        rows: list[list[Any]] = []
        if not header_written and table.num_columns:
            rows.append(table.column_names)
            header_written = True
        rows.extend(["" if v is None else _plain(v) for v in row.values()] for row in table.to_pylist())
        yield csv_text(rows).encode()


def _json_chunks(tables: Iterable[pa.Table]) -> Iterator[bytes]:
    yield b"["
    first = True
    for table in tables:
        parts = []
        for row in table.to_pylist():
            parts.append(("" if first else ",") + "\n" + json.dumps({k: _plain(v) for k, v in row.items()}))
            first = False
        if parts:
            yield "".join(parts).encode()
    yield b"\n]\n"


class _ChunkSink(io.RawIOBase):
    """A write-only file that keeps what was written until :meth:`drain` (for streaming Parquet)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


def _parquet_chunks(tables: Iterable[pa.Table]) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    sink = _ChunkSink()
    writer: pq.ParquetWriter | None = None
    for table in tables:
        if writer is None:
            writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), table.schema, compression="zstd")
        if table.num_rows:
            writer.write_table(table.cast(writer.schema))
        yield sink.drain()
    if writer is not None:
        writer.close()
    yield sink.drain()


def _excel_value(worksheet: Any, value: Any) -> Any:
    """A cell value for openpyxl; a string becomes a string cell whatever it starts with."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # UTC, as the column header says
    if isinstance(value, str):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(worksheet, value=value)
        cell.data_type = "s"  # openpyxl makes "=…" a formula and "#N/A" an error: text stays text
        if is_formula_text(value):
            cell.quotePrefix = True  # shown and kept as text when edited (Excel's leading ')
        return cell
    return value


def _xlsx_chunks(tables: Iterable[pa.Table], sheet: str) -> Iterator[bytes]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet: Any = None
    written, part, header = 0, 0, None
    for table in tables:
        header = header or [
            f"{n} (UTC)" if pa.types.is_timestamp(t) else n
            for n, t in zip(table.column_names, table.schema.types, strict=True)
        ]
        for row in table.to_pylist():
            if worksheet is None or written >= XLSX_MAX_ROWS:
                part += 1
                worksheet = workbook.create_sheet(sheet if part == 1 else f"{sheet} ({part})")
                worksheet.append(header)
                written = 0
            worksheet.append([_excel_value(worksheet, v) for v in row.values()])
            written += 1
    if worksheet is None:
        worksheet = workbook.create_sheet(sheet)
        if header:
            worksheet.append(header)
    with tempfile.TemporaryFile() as file:
        workbook.save(file)
        file.seek(0)
        while chunk := file.read(1 << 16):
            yield chunk


def encode(tables: Iterable[pa.Table], fmt: str, *, sheet: str = "data") -> Iterator[bytes]:
    """The bytes of ``tables`` (pages of one dataset, same columns) in ``fmt``, chunk by chunk."""
    media_type(fmt)
    if fmt == "csv":
        return _csv_chunks(tables)
    if fmt == "json":
        return _json_chunks(tables)
    if fmt == "parquet":
        return _parquet_chunks(tables)
    return _xlsx_chunks(tables, sheet)
