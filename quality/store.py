"""The warehouse side of the quality job: outcomes into ``xp.dq_results``, alert state in ``xp.alerts``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from quality.alerts import AlertRecord, AlertState
from quality.outcomes import CheckOutcome
from xpcore.warehouse import load_query

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.warehouse import Warehouse

__all__ = ["alerts_table", "read_alert_state", "store_alerts", "store_outcomes"]


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def store_outcomes(
    warehouse: Warehouse, run_id: str, run_at: datetime, outcomes: Sequence[CheckOutcome]
) -> int:
    """One ``xp.dq_results`` row per outcome (a retried insert of the same run is deduplicated)."""
    import pyarrow as pa

    timestamp = pa.timestamp("ms", tz="UTC")
    schema = pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("run_at", timestamp, nullable=False),
            pa.field("check", pa.string(), nullable=False),
            pa.field("experiment", pa.string()),
            pa.field("table_name", pa.string()),
            pa.field("success", pa.bool_(), nullable=False),
            pa.field("severity", pa.string(), nullable=False),
            pa.field("observed", pa.string(), nullable=False),
            pa.field("threshold", pa.string(), nullable=False),
            pa.field("detail", pa.string(), nullable=False),
        ]
    )
    rows = [
        {
            "run_id": run_id,
            "run_at": run_at,
            "check": o.check,
            "experiment": o.experiment,
            "table_name": o.table,
            "success": o.success,
            "severity": o.severity,
            "observed": _json(o.observed),
            "threshold": _json(o.threshold),
            "detail": o.detail,
        }
        for o in outcomes
    ]
    if not rows:
        return 0
    return warehouse.insert_arrow(
        "xp.dq_results", pa.Table.from_pylist(rows, schema=schema), dedup_token=f"dq:{run_id}"
    )


def read_alert_state(warehouse: Warehouse) -> dict[str, AlertState]:
    """Fingerprint → its latest state and last firing time, from ``xp.alerts``."""
    rows = warehouse.query_arrow(load_query("quality_alert_state")).to_pylist()
    return {
        str(row["fingerprint"]): AlertState(
            firing=row["latest_state"] == "firing",
            last_fired_at=row["last_fired_at"] if row["last_fired_at"].year > 1970 else None,
        )
        for row in rows
    }


def alerts_table(records: Sequence[AlertRecord]) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema(
        [
            pa.field("alert_id", pa.string(), nullable=False),
            pa.field("fingerprint", pa.string(), nullable=False),
            pa.field("state", pa.string(), nullable=False),
            pa.field("check", pa.string(), nullable=False),
            pa.field("experiment", pa.string()),
            pa.field("table_name", pa.string()),
            pa.field("detail", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("at", pa.timestamp("ms", tz="UTC"), nullable=False),
        ]
    )
    return pa.Table.from_pylist([r.to_row() for r in records], schema=schema)


def store_alerts(warehouse: Warehouse, run_id: str, records: Sequence[AlertRecord]) -> int:
    """Insert the run's alert state changes into ``xp.alerts``."""
    if not records:
        return 0
    return warehouse.insert_arrow("xp.alerts", alerts_table(records), dedup_token=f"alerts:{run_id}")
