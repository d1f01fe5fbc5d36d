"""The pure parts of the exports: the YAML edge, windows, file names, page SQL and the file formats."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.exports.datasets import PAGED_DATASETS, PageQuery, page_sql
from jobs.exports.destination import Destination, export_file_name, open_destination
from jobs.exports.formats import write_export_file
from jobs.exports.spec import load_exports, parse_window
from xpcore.config import ExportSettings
from xpcore.errors import ConfigError, TerminalError

T0 = dt.datetime(2024, 5, 17, 6, 30, tzinfo=dt.UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exports.yaml"
    path.write_text(text)
    return path


def test_exports_file_is_read_and_checked(tmp_path: Path) -> None:
    specs = load_exports(
        write(tmp_path, "exports:\n  - {name: a, dataset: events, format: csv, window: 15m}\n")
    )
    assert [(s.name, s.window_delta, s.windowed) for s in specs] == [("a", dt.timedelta(minutes=15), True)]
    assert load_exports(write(tmp_path, "")) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("exports:\n  - {name: a, dataset: users, format: csv}\n", r"exports\[0\]\.dataset: Input should be"),
        ("exports:\n  - {name: a, dataset: events, format: xls}\n", r"exports\[0\]\.format"),
        ("exports:\n  - {name: ../a, dataset: events, format: csv}\n", r"exports\[0\]\.name"),
        ("exports:\n  - {name: a, dataset: events, format: csv, window: 1 week}\n", "window must be"),
        ("exports:\n  - {name: a, dataset: events, format: csv, sql: DROP}\n", r"exports\[0\]\.sql"),
        (
            "exports:\n  - {name: a, dataset: events, format: csv}\n"
            "  - {name: a, dataset: events, format: csv}\n",
            "declared twice",
        ),
        ("exports:\n  - {name: a, dataset: events, format: csv, experiments: [x]}\n", "results dataset only"),
        ("exports: [\n", "not valid YAML"),
    ],
)
def test_a_bad_exports_file_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        load_exports(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_windows_and_file_names() -> None:
    assert parse_window("7d") == dt.timedelta(days=7)
    with pytest.raises(ValueError, match="window"):
        parse_window("0h")
    window = (T0 - dt.timedelta(days=1), T0)
    name = export_file_name("raw", "parquet", T0, window, "abc123")
    assert name == "raw_20240516T063000Z_20240517T063000Z_run20240517T063000Z-abc123.parquet"
    assert export_file_name("res", "xlsx", T0, None, "abc123") == "res_run20240517T063000Z-abc123.xlsx"


def test_page_sql_binds_every_value() -> None:
    hostile = "x' OR 1=1 --"
    query = PageQuery(
        PAGED_DATASETS["exposures"],
        limit=10,
        since=T0 - dt.timedelta(hours=1),
        until=T0,
        filters={"experiment": hostile},
        after=[hostile, "u1", T0, "x1"],
    )
    sql, params = page_sql(query)
    assert hostile not in sql and "u1" not in sql
    assert params["f0"] == hostile and params["k0"] == hostile and params["limit"] == 10
    assert "(experiment_key, unit_id, exposed_at, exposure_id) > ({k0:String}, {k1:String}" in sql
    assert sql.endswith(
        "ORDER BY experiment_key, unit_id, exposed_at, exposure_id LIMIT 1 BY "
        "experiment_key, unit_id, exposed_at, exposure_id LIMIT {limit:UInt32}"
    )
    with pytest.raises(ValueError, match="4 key values"):
        page_sql(PageQuery(PAGED_DATASETS["exposures"], limit=1, after=["a"]))


PAGES = [
    pa.table(
        {
            "name": pa.array(["=1+1", "plain"]).dictionary_encode(),
            "n": pa.array([1, 2], pa.int64()),
            "x": pa.array([0.5, None], pa.float64()),
            "at": pa.array([T0, T0], pa.timestamp("ms", tz="UTC")),
        }
    ),
    pa.table(
        {
            "name": pa.array(["-3"]).dictionary_encode(),
            "n": pa.array([3], pa.int64()),
            "x": pa.array([float("nan")], pa.float64()),
            "at": pa.array([T0], pa.timestamp("ms", tz="UTC")),
        }
    ),
]


def test_formats_write_every_row(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    assert write_export_file(iter(PAGES), "csv", tmp_path / "a.csv") == 3
    with (tmp_path / "a.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["name"] for r in rows] == ["'=1+1", "plain", "'-3"]
    assert rows[0]["at"] == "2024-05-17T06:30:00+00:00" and rows[1]["x"] == "" and rows[2]["x"] == ""

    assert write_export_file(iter(PAGES), "json", tmp_path / "a.json") == 3
    document = json.loads((tmp_path / "a.json").read_text())
    assert [r["n"] for r in document] == [1, 2, 3] and document[1]["x"] is None
    assert document[2]["x"] is None  # NaN: standard JSON has none

    assert write_export_file(iter(PAGES), "parquet", tmp_path / "a.parquet") == 3
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.schema.field("name").type == pa.string()
    assert table.column("x").to_pylist()[:2] == [0.5, None]

    assert write_export_file(iter(PAGES), "xlsx", tmp_path / "a.xlsx", sheet="things") == 3
    sheet = load_workbook(tmp_path / "a.xlsx")["things"]
    assert [c.value for c in sheet[1]] == ["name", "n", "x", "at (UTC)"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:D1"
    assert all(c.font.bold and c.fill.fgColor.rgb.endswith("DDE7F3") for c in sheet[1])
    first = sheet[2]
    assert first[0].value == "=1+1" and first[0].data_type == "s" and first[0].quotePrefix
    assert (first[1].value, first[1].number_format) == (1, "#,##0")
    assert (first[2].value, first[2].number_format) == (0.5, "0.0000")
    assert first[3].value == T0.replace(tzinfo=None) and first[3].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet[4][0].value == "-3" and sheet[4][2].value is None and sheet.max_row == 4


def test_empty_exports_still_have_a_header(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    empty = [PAGES[0].slice(0, 0)]
    assert write_export_file(iter(empty), "csv", tmp_path / "e.csv") == 0
    assert (tmp_path / "e.csv").read_text().strip() == "name,n,x,at"
    assert write_export_file(iter(empty), "xlsx", tmp_path / "e.xlsx") == 0
    assert [c.value for c in load_workbook(tmp_path / "e.xlsx")["data"][1]] == ["name", "n", "x", "at (UTC)"]
    assert write_export_file(iter(empty), "json", tmp_path / "e.json") == 0
    assert json.loads((tmp_path / "e.json").read_text()) == []


def test_local_destination_never_overwrites(tmp_path: Path) -> None:
    settings = ExportSettings(home=tmp_path)
    destination = open_destination(str(tmp_path / "out"), settings, export="a")
    assert isinstance(destination, Destination)
    source = tmp_path / "file.csv"
    source.write_text("a\n1\n")
    assert destination.put(source, "a", "x.csv") == f"file://{tmp_path}/out/a/x.csv"
    source.write_text("b\n2\n")
    with pytest.raises(TerminalError, match="exists already"):
        destination.put(source, "a", "x.csv")
    assert (tmp_path / "out" / "a" / "x.csv").read_text() == "a\n1\n"
    assert [p.name for p in (tmp_path / "out" / "a").iterdir()] == ["x.csv"]  # no staging left
    with pytest.raises(ConfigError, match="export 'a': destination 'ftp://x'"):
        open_destination("ftp://x", settings, export="a")


def test_every_export_query_passes_the_read_only_guard() -> None:
    """With `xp up` running, the job reads through the owner's warehouse API, which runs read-only SQL."""
    from jobs.exports.job import LATEST_QUALITY_SQL, LATEST_RESULTS_OF_SQL, LATEST_RESULTS_SQL
    from xpcore.warehouse.sqlguard import read_only_refusal

    paged = [
        page_sql(
            PageQuery(d, limit=5, since=T0, until=T0, filters=dict.fromkeys(d.filters, "x"), after=None)
        )[0]
        for d in PAGED_DATASETS.values()
    ]
    for sql in [*paged, LATEST_RESULTS_SQL, LATEST_RESULTS_OF_SQL, LATEST_QUALITY_SQL]:
        assert read_only_refusal(sql) is None, sql
