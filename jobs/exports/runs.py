"""Each export a run writes, as one row of ``xp.export_runs`` (sql/migrations/0013_export_runs.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.warehouse import Warehouse

__all__ = ["EXPORT_RUNS_TABLE", "ExportRun", "export_runs_table", "store_export_runs"]

EXPORT_RUNS_TABLE = "xp.export_runs"

Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class ExportRun:
    """One named export of one run: what was written where, or why not."""

    run_id: str
    export_name: str
    dataset: str
    format: str
    destination: str
    file: str
    rows: int
    bytes: int
    started_at: datetime
    finished_at: datetime
    status: Status
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "export_name": self.export_name,
            "dataset": self.dataset,
            "format": self.format,
            "destination": self.destination,
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "status": self.status,
            "error": self.error or None,
        }


def export_runs_table(runs: list[ExportRun]) -> pa.Table:
    """Rows for ``xp.export_runs`` as a pyarrow Table (pure)."""
    import pyarrow as pa

    stamp = pa.timestamp("ms", tz="UTC")

    def strings(name: str) -> pa.Array:
        return pa.array([getattr(r, name) for r in runs], pa.string())

    return pa.table(
        {
            **{n: strings(n) for n in ("run_id", "export_name", "dataset", "format", "destination", "file")},
            "rows": pa.array([r.rows for r in runs], pa.uint64()),
            "bytes": pa.array([r.bytes for r in runs], pa.uint64()),
            "started_at": pa.array([r.started_at for r in runs], stamp),
            "finished_at": pa.array([r.finished_at for r in runs], stamp),
            "status": strings("status"),
            "error": strings("error"),
        }
    )


def store_export_runs(warehouse: Warehouse, runs: list[ExportRun]) -> None:
    """Insert the runs' rows (deduplicated by the run id where the table keeps a dedup window)."""
    if runs:
        token = f"export-runs-{runs[0].run_id}"
        warehouse.insert_arrow(EXPORT_RUNS_TABLE, export_runs_table(runs), dedup_token=token)
