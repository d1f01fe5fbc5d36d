"""sql/dashboards: every query file loads, has its header, binds only declared parameters, is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboards.queries import DASHBOARD_SQL_DIR, dashboard_query, query_names, query_parameters

DASHBOARDS = Path(__file__).resolve().parents[3] / "dashboards"


def test_there_are_query_files() -> None:
    assert len(query_names()) >= 10


@pytest.mark.parametrize("name", query_names())
def test_query_file_has_header_and_typed_parameters(name: str) -> None:
    sql = dashboard_query(name)
    header = [line for line in sql.splitlines() if line.startswith("--")]
    assert header and header[0].startswith("-- Dashboards"), name
    assert any("grain:" in line for line in header), f"{name}: header names the grain"
    for parameter, type_ in query_parameters(sql).items():
        assert re.fullmatch(r"[a-z_]+", parameter), parameter
        assert type_.split("(")[0] in {"String", "DateTime64", "UInt32", "UInt64"}, (name, type_)
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    assert not re.search(r"'\{\w+:", body), f"{name}: parameters are bound, never quoted into the text"


def test_every_query_file_is_used_by_the_app_or_grafana() -> None:
    grafana = DASHBOARDS.parent / "deploy" / "grafana" / "generate.py"
    source = "\n".join(p.read_text() for p in [*DASHBOARDS.glob("*.py"), grafana])
    unused = [name for name in query_names() if f'"{name}"' not in source]
    assert unused == []


def test_parameters_parse() -> None:
    sql = "SELECT 1 WHERE a = {experiment:String} AND t >= {since:DateTime64(3, 'UTC')}"
    assert query_parameters(sql) == {"experiment": "String", "since": "DateTime64(3, 'UTC')"}
    assert DASHBOARD_SQL_DIR.name == "dashboards"
