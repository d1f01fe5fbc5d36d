"""The tables of sql/migrations/ hold the records of schemas/ exactly: same columns, same types, round trip.

Runs against a fresh migrated chDB store per test (the ``warehouse`` fixture).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from schemas.arrow import TABLES, TableBinding, clickhouse_type, to_arrow
from schemas.records import DeadLetter, Exposure, MetricEvent, RegistryRecord
from tests.unit.test_schemas import (
    T0,
    make_dead_letter_record,
    make_event,
    make_exposure,
    make_registry_records,
)
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

BINDINGS = list(TABLES.values())


def table_columns(warehouse: Warehouse, table: str) -> list[tuple[str, str, str]]:
    """(name, type, default_kind) of each column of ``db.table``, in table order."""
    database, name = table.split(".")
    result = warehouse.query_arrow(
        "SELECT name, type, default_kind FROM system.columns"
        " WHERE database = {database:String} AND table = {table:String} ORDER BY position",
        {"database": database, "table": name},
    )
    return list(zip(*(result.column(c).to_pylist() for c in ("name", "type", "default_kind")), strict=True))


def without_low_cardinality(clickhouse: str) -> str:
    return re.sub(r"^LowCardinality\((.*)\)$", r"\1", clickhouse)


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.table)
def test_table_columns_match_arrow_schema(warehouse: Warehouse, binding: TableBinding) -> None:
    columns = table_columns(warehouse, binding.table)
    assert [name for name, _, _ in columns] == [*binding.schema.names, *binding.defaulted_columns]
    types = {name: clickhouse for name, clickhouse, _ in columns}
    for field in binding.schema:
        assert without_low_cardinality(types[field.name]) == clickhouse_type(field), field.name
    defaults = {name: kind for name, _, kind in columns}
    assert all(defaults[name] == "DEFAULT" for name in binding.defaulted_columns)
    assert all(defaults[name] == "" for name in binding.schema.names)


def test_tables_keep_insert_deduplication_windows(warehouse: Warehouse) -> None:
    settings = warehouse.query_arrow(
        "SELECT name, create_table_query FROM system.tables WHERE database = 'xp'"
        " AND name IN ('exposures', 'events', 'dead_letters', 'registry')"
    ).to_pylist()
    assert len(settings) == 4
    for row in settings:
        assert "non_replicated_deduplication_window = 1000" in row["create_table_query"], row["name"]


def normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows comparable across Arrow producers: maps as dicts (Arrow gives lists of pairs)."""
    out = []
    for row in rows:
        out.append({k: dict(v) if isinstance(v, list) else v for k, v in row.items()})
    return out


def read_back(warehouse: Warehouse, binding: TableBinding) -> pa.Table:
    columns = ", ".join(binding.schema.names)
    order = ", ".join(binding.sort_key)
    table = warehouse.query_arrow(f"SELECT {columns} FROM {binding.table} ORDER BY {order}")
    # ClickHouse returns String as Arrow string; the byte columns are raw bytes, so read them as such.
    for index, field in enumerate(binding.schema):
        if field.type == pa.binary():
            table = table.set_column(index, field.name, table.column(index).cast(pa.binary()))
    return table


RECORDS: dict[type, list[Any]] = {
    Exposure: [
        make_exposure(),
        make_exposure(
            exposure_id="e-2",
            unit_id="user-7",
            variation_id=0,
            variation_key="control",
            feature_key=None,
            bucket=None,
            overridden=True,
            attributes={},
            user_agent=None,
            sent_at=None,
            exposed_at=T0 + timedelta(days=40),
        ),
    ],
    MetricEvent: [
        make_event(),
        make_event(event_id="ev-2", event_name="pageview", value=None, properties={}, sent_at=T0),
    ],
    DeadLetter: [
        make_dead_letter_record(),
        make_dead_letter_record(
            dead_letter_id="dl-2",
            original=b"\x00\x01 not json",
            original_key=None,
            source_partition=None,
            source_offset=None,
            source_topic="http",
        ),
    ],
    RegistryRecord: make_registry_records(),
}


@pytest.mark.parametrize("record_type", list(RECORDS), ids=lambda t: t.__name__)
def test_records_round_trip_through_their_table(warehouse: Warehouse, record_type: type) -> None:
    binding = TABLES[record_type]
    records = RECORDS[record_type]
    sent = to_arrow(records)
    assert warehouse.insert_arrow(binding.table, sent) == len(records)

    received = read_back(warehouse, binding)
    key = binding.sort_key
    expected = sorted(normalised(sent.to_pylist()), key=lambda row: tuple(str(row[k]) for k in key))
    actual = sorted(normalised(received.to_pylist()), key=lambda row: tuple(str(row[k]) for k in key))
    assert actual == expected

    ingested = warehouse.query_arrow(f"SELECT min(ingested_at) AS first FROM {binding.table}")
    assert ingested.column("first")[0].as_py() is not None


def test_same_dedup_token_inserts_once(warehouse: Warehouse) -> None:
    batch = to_arrow([make_event(event_id=f"ev-{i}") for i in range(10)])
    warehouse.insert_arrow("xp.events", batch, dedup_token="xp.events/0/0-9")
    warehouse.insert_arrow("xp.events", batch, dedup_token="xp.events/0/0-9")
    warehouse.insert_arrow("xp.events", batch.slice(0, 3), dedup_token="xp.events/0/10-12")
    count = warehouse.query_arrow("SELECT count() AS n FROM xp.events").column("n")[0].as_py()
    assert count == 13
