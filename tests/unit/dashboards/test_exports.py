"""Exports: pages stream through every format and parse back to the same rows; paging stops right."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from dashboards.exports import encode, media_type, paged_tables, result_rows_table
from xpcore.errors import ValidationError

ROWS: list[dict[str, Any]] = [
    {
        "metric": f"m{i % 3}",
        "variation_id": i % 2,
        "day": date(2026, 11, 1 + i % 20),
        "units": i,
        "mean": None if i % 7 == 0 else i / 3,
        "at": datetime(2026, 11, 20, 12, i % 60, tzinfo=UTC),
        "flag": i % 2 == 0,
    }
    for i in range(2500)
]
SCHEMA = pa.schema(
    [
        ("metric", pa.string()),
        ("variation_id", pa.int64()),
        ("day", pa.date32()),
        ("units", pa.int64()),
        ("mean", pa.float64()),
        ("at", pa.timestamp("ms", tz="UTC")),
        ("flag", pa.bool_()),
    ]
)


def pages(size: int) -> list[pa.Table]:
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    return list(paged_tables(lambda limit, offset: table.slice(offset, limit), size))


def test_paging_reads_until_a_short_page() -> None:
    assert [p.num_rows for p in pages(1000)] == [1000, 1000, 500]
    assert [p.num_rows for p in pages(2500)] == [2500, 0]


def chunks(fmt: str) -> list[bytes]:
    return [c for c in encode(iter(pages(1000)), fmt) if c]


def test_csv_round_trip() -> None:
    parts = chunks("csv")
    assert len(parts) == 3  # one chunk per page: streamed, not built whole
    rows = list(csv.DictReader(io.StringIO(b"".join(parts).decode())))
    assert len(rows) == len(ROWS)
    assert rows[7]["mean"] == "" and rows[8]["mean"] == repr(8 / 3)
    assert rows[5]["day"] == ROWS[5]["day"].isoformat()
    assert datetime.fromisoformat(rows[5]["at"]) == ROWS[5]["at"]


def test_json_round_trip() -> None:
    rows = json.loads(b"".join(chunks("json")))
    assert len(rows) == len(ROWS)
    assert rows[7]["mean"] is None and rows[8]["mean"] == pytest.approx(8 / 3)
    assert rows[3]["flag"] is False and rows[4]["flag"] is True


def test_parquet_round_trip_in_several_chunks() -> None:
    parts = chunks("parquet")
    assert len(parts) >= 3
    table = pq.read_table(io.BytesIO(b"".join(parts)))
    assert table.to_pylist() == ROWS


def test_xlsx_round_trip() -> None:
    sheet = load_workbook(io.BytesIO(b"".join(chunks("xlsx"))), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("metric", "variation_id", "day", "units", "mean", "at (UTC)", "flag")
    assert len(rows) == len(ROWS) + 1
    assert rows[9][4] == pytest.approx(ROWS[8]["mean"])
    assert rows[6][5] == ROWS[5]["at"].replace(tzinfo=None)


def test_empty_export_still_parses() -> None:
    empty = pa.table({"a": pa.array([], pa.string())})
    assert json.loads(b"".join(encode(iter([empty]), "json"))) == []
    assert pq.read_table(io.BytesIO(b"".join(encode(iter([empty]), "parquet")))).num_rows == 0
    assert b"".join(encode(iter([empty]), "csv")).decode().strip() == "a"


def test_result_rows_table_flattens_the_results_document() -> None:
    document = {
        "experiment": "e",
        "computed_at": "2026-11-25T10:00:00+00:00",
        "method": "frequentist",
        "srm_p_value": 0.5,
        "metrics": [
            {
                "metric": "conversion",
                "type": "binomial",
                "role": "primary",
                "variants": [
                    {
                        "variation_id": v,
                        "key": f"v{v}",
                        "name": f"V{v}",
                        "units": 10,
                        "mean": 0.1,
                        "estimate": None if v == 0 else 0.2,
                        "ci_low": None,
                        "ci_high": None,
                        "p_value": None,
                        "chance_to_win": None,
                        "significant": False,
                        "error": None,
                    }
                    for v in range(2)
                ],
            }
        ],
    }
    table = result_rows_table(document)
    assert table.num_rows == 2
    assert table.column("estimate").to_pylist() == [None, 0.2]
    assert table.column("srm_p_value").to_pylist() == [0.5, 0.5]


def test_unknown_format() -> None:
    with pytest.raises(ValidationError, match="format"):
        media_type("pdf")
