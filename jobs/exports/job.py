"""`xp jobs run export`: every named export of ``XP_EXPORT_FILE`` written once, each run recorded.

For each export: read its rows (windowed datasets page by page in key order, :mod:`.datasets`; results
and quality as their latest snapshot), write the file locally (:mod:`.formats`), put it in place
atomically under a name no other run uses (:mod:`.destination`), and add a row to ``xp.export_runs``
(:mod:`.runs`). One export failing does not stop the others; the run then ends with a
:class:`~xpcore.errors.TerminalError` naming the failed ones (exit 1), after every row is recorded.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.exports.datasets import PAGED_DATASETS, PagedDataset, PageQuery, page_sql
from jobs.exports.destination import export_file_name, open_destination
from jobs.exports.formats import EXTENSIONS, write_export_file
from jobs.exports.runs import ExportRun, store_export_runs
from jobs.exports.spec import ExportSpec, load_exports
from xpcore.errors import TerminalError, XpError

if TYPE_CHECKING:
    import pyarrow as pa

    from xpcore.config import ExportSettings
    from xpcore.warehouse import Warehouse

__all__ = [
    "LATEST_QUALITY_SQL",
    "LATEST_RESULTS_OF_SQL",
    "LATEST_RESULTS_SQL",
    "ExportReport",
    "read_pages",
    "run_exports",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_RESULT_COLUMNS = ", ".join(name for name, _ in PAGED_DATASETS["results"].columns)
LATEST_RESULTS_SQL = (
    f"SELECT {_RESULT_COLUMNS} FROM xp.results FINAL "  # nosec B608
    "WHERE computed_at = (SELECT max(computed_at) FROM xp.results) "
    "ORDER BY experiment_key, metric, variation_id"
)
"""The latest snapshot of `xp jobs run stats`: every experiment running when it was computed."""
LATEST_RESULTS_OF_SQL = (
    f"SELECT {_RESULT_COLUMNS} FROM xp.results FINAL "  # nosec B608
    "WHERE experiment_key IN {experiments:Array(String)} AND (experiment_key, computed_at) IN "
    "(SELECT experiment_key, max(computed_at) FROM xp.results "
    "WHERE experiment_key IN {experiments:Array(String)} GROUP BY experiment_key) "
    "ORDER BY experiment_key, metric, variation_id"
)
"""Each named experiment's latest stored snapshot."""
LATEST_QUALITY_SQL = (
    "SELECT run_id, run_at, check, experiment, table_name, success, severity, observed, threshold, detail "
    "FROM xp.dq_results WHERE run_id = (SELECT argMax(run_id, run_at) FROM xp.dq_results) "
    "ORDER BY check, experiment, table_name"
)
"""Every check outcome of the latest `xp jobs run quality`."""


@dataclass
class ExportReport:
    """What a run of the export job wrote."""

    runs: list[ExportRun] = field(default_factory=list)
    declared: bool = True

    @property
    def ok(self) -> bool:
        """Always: a run with a failed export raises after recording it."""
        return True

    def summary(self) -> str:
        if not self.declared:
            return "export: no exports declared (set XP_EXPORT_FILE, see docs/exports.md)"
        lines = [f"export: {len(self.runs)} export(s)"]
        for run in self.runs:
            if run.status == "ok":
                lines.append(f"  {run.export_name}: {run.rows} rows, {run.bytes} bytes → {run.file}")
            else:
                lines.append(f"  {run.export_name}: failed: {run.error}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"declared": self.declared, "exports": [run.as_dict() for run in self.runs]}


def read_pages(
    warehouse: Warehouse,
    dataset: PagedDataset,
    *,
    batch_rows: int,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: dict[str, str] | None = None,
) -> Iterator[pa.Table]:
    """Every row of ``dataset`` in the window, page after page in key order (at least one page)."""
    after: list[Any] | None = None
    while True:
        query = PageQuery(dataset, batch_rows, since, until, filters or {}, after)
        page = warehouse.query_arrow(*page_sql(query))
        yield page
        if page.num_rows < batch_rows:
            return
        last = page.slice(page.num_rows - 1).to_pylist()[0]
        after = [last[k.name] for k in dataset.key]


def _tables(
    warehouse: Warehouse,
    spec: ExportSpec,
    window: tuple[datetime, datetime] | None,
    batch: int,
) -> Iterator[pa.Table]:
    if window is not None:
        dataset = PAGED_DATASETS[spec.dataset]
        yield from read_pages(warehouse, dataset, batch_rows=batch, since=window[0], until=window[1])
    elif spec.dataset == "results" and spec.experiments:
        yield warehouse.query_arrow(LATEST_RESULTS_OF_SQL, {"experiments": list(spec.experiments)})
    elif spec.dataset == "results":
        yield warehouse.query_arrow(LATEST_RESULTS_SQL)
    else:
        yield warehouse.query_arrow(LATEST_QUALITY_SQL)


def _export_one(
    warehouse: Warehouse,
    spec: ExportSpec,
    settings: ExportSettings,
    *,
    run_id: str,
    since: datetime | None,
    until: datetime | None,
    clock: Clock,
) -> ExportRun:
    started = clock()
    url = spec.destination or settings.export_location
    file_name = ""
    try:
        destination = open_destination(url, settings, export=spec.name)
        window = None
        if spec.windowed:
            end = (until or started).astimezone(UTC)
            window = ((since or end - spec.window_delta).astimezone(UTC), end)
            if window[0] >= window[1]:
                raise TerminalError(f"the window of {spec.name!r} is empty ({window[0]} ≥ {window[1]})")
        token = uuid.uuid4().hex[:6]
        file_name = export_file_name(spec.name, EXTENSIONS[spec.format], started, window, token)
        with tempfile.TemporaryDirectory(prefix="xp-export-") as scratch:
            local = Path(scratch) / file_name
            tables = _tables(warehouse, spec, window, settings.export_batch_rows)
            rows = write_export_file(tables, spec.format, local, sheet=spec.name)
            size = local.stat().st_size
            destination.put(local, spec.name, file_name)
    except XpError as error:
        logger.warning("export %s failed: %s", spec.name, error)
        return _run(run_id, spec, url, file_name, 0, 0, started, clock(), "failed", str(error))
    except Exception as error:  # e.g. the warehouse refusing a query: recorded, the others go on
        logger.warning("export %s failed", spec.name, exc_info=True)
        message = f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"
        return _run(run_id, spec, url, file_name, 0, 0, started, clock(), "failed", message[:500])
    logger.info("export written", extra={"export": spec.name, "rows": rows, "bytes": size})
    return _run(run_id, spec, url, file_name, rows, size, started, clock(), "ok", "")


def _run(
    run_id: str,
    spec: ExportSpec,
    url: str,
    file_name: str,
    rows: int,
    size: int,
    started: datetime,
    finished: datetime,
    status: Any,
    error: str,
) -> ExportRun:
    first_line = error.splitlines()[0] if error else ""
    return ExportRun(
        run_id,
        spec.name,
        spec.dataset,
        spec.format,
        url,
        file_name,
        rows,
        size,
        started,
        finished,
        status,
        first_line,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_exports(
    settings: ExportSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    warehouse: Warehouse | None = None,
    clock: Clock = _utc_now,
) -> ExportReport:
    """Write every declared export once. ``since``/``until`` override the windows of windowed exports
    (default: ``[until - window, until)`` with ``until`` the run's start). ``warehouse``: an open one
    to use (it stays open); by default the configured one is opened and closed."""
    if settings.export_file is None:
        return ExportReport(declared=False)
    specs = load_exports(settings.export_file)
    run_id = uuid.uuid4().hex
    owned = warehouse is None
    if warehouse is None:
        from xpcore.warehouse import open_warehouse

        warehouse = open_warehouse(settings)
    report = ExportReport()
    try:
        for spec in specs:
            report.runs.append(
                _export_one(warehouse, spec, settings, run_id=run_id, since=since, until=until, clock=clock)
            )
        try:
            store_export_runs(warehouse, report.runs)
        except Exception as error:
            logger.warning("export runs not recorded in xp.export_runs: %s", error)
    finally:
        if owned:
            warehouse.close()
    failed = [run for run in report.runs if run.status == "failed"]
    if failed:
        names = "; ".join(f"{run.export_name}: {run.error}" for run in failed)
        raise TerminalError(f"{len(failed)} of {len(report.runs)} export(s) failed: {names}")
    return report
