"""Every `sql` block of docs/runbooks/ runs (read-only) on an empty, migrated warehouse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)
QUERIES = [
    pytest.param(sql, id=f"{path.stem}-{number}")
    for path in sorted(RUNBOOKS.glob("*.md"))
    for number, sql in enumerate(BLOCK.findall(path.read_text(encoding="utf-8")), start=1)
]


def test_the_runbooks_have_queries() -> None:
    assert len(QUERIES) >= 12


@pytest.mark.parametrize("sql", QUERIES)
def test_runbook_query_runs_on_an_empty_warehouse(warehouse: Warehouse, sql: str) -> None:
    table = warehouse.query_arrow(sql, read_only=True)
    assert table.num_columns >= 2
