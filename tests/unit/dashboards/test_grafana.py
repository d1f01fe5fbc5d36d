"""deploy/grafana: the dashboards JSON is generated from sql/dashboards and up to date."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def targets() -> list[dict[str, Any]]:
    found = []
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            found += panel["targets"]
    return found


def test_json_is_up_to_date() -> None:
    assert generator().main(["--check"]) == 0


def test_every_panel_runs_a_dashboard_query_file() -> None:
    module = generator()
    bodies = {name: module.file_sql(name) for name in (p.stem for p in module.SQL_DIR.glob("*.sql"))}
    assert len(targets()) >= 8
    for target in targets():
        assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
        assert any(body in target["rawSql"] for body in bodies.values()), target["rawSql"][:80]
        assert not re.search(r"\{\w+:[^{}]+\}", target["rawSql"]), "ClickHouse placeholders left for Grafana"
