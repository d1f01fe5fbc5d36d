"""``xp jobs run unit-values``: keep ``xp.unit_values`` current in the background (decision 0028).

For every running experiment of the registry, the plan :func:`jobs.results.compute.compute_experiment_result`
would read (its metrics of the one shared scan; the CUPED covariates when its ``analysis:`` block asks
for CUPED, over ``XP_ETL_COVARIATE_DAYS``) is refreshed (:func:`jobs.unit_values.refresh`: a full
build the first time, then only the changed units). A results call then finds the values (nearly)
current, and its own refresh has little or nothing to fold in.

**Compaction.** A recomputed unit adds a row with a higher version, in a new part. The read's ``FINAL``
then merges the key's parts on every call: a part of changed units spread over the whole key range
overlaps every range of the big part, so even a small one makes ``FINAL`` merge all of it (measured at
1 M units, docs/benchmarks.md: the full results took 1.6× the CPU with 4 parts as with 1, and 2.5–3×
the wall time with 2 parts at load ~5, where 9.5 % of the rows were replaced).
So after the refreshes of a run, when some refreshed key has rows in more than one part,
``OPTIMIZE TABLE xp.unit_values FINAL`` merges them, once per run (the table has no partitions: the
merge covers every key; it keeps each unit's newest version, which is what ``FINAL`` reads, so results
do not change). ``XP_RESULTS_UNIT_VALUES_COMPACT=false`` leaves it to ClickHouse's background merges.
This runs here, never in the read path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assignment.metrics_catalog import DEFAULT_METRICS
from jobs.results.analysis import analyzed_metrics
from jobs.results.batch import batch_plan
from jobs.unit_values import RefreshReport, UnitValuesSettings, refresh
from jobs.unit_values.plan import UnitValuesPlan, unit_values_plan

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec, RegistrySnapshot
    from xpcore.warehouse import Warehouse

__all__ = [
    "COMPACT_SQL",
    "STORED_ROWS_SQL",
    "CompactionReport",
    "ExperimentRefresh",
    "RefresherRun",
    "compact",
    "experiment_unit_values_plan",
    "refresh_experiment",
    "refresh_running",
    "run_unit_values",
    "stored_parts",
]

logger = logging.getLogger(__name__)

STORED_ROWS_SQL = """
SELECT count() AS rows, uniqExact(_part) AS parts
FROM xp.unit_values
WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}
"""
"""Stored rows of one key (replaced ones included) and the parts holding them (primary key range,
virtual column: no data read)."""

COMPACT_SQL = "OPTIMIZE TABLE xp.unit_values FINAL"


@dataclass(frozen=True)
class CompactionReport:
    """The keys' stored rows and parts before compaction, and whether it ran."""

    rows: int
    parts: int
    compacted: bool
    seconds: float


@dataclass(frozen=True)
class ExperimentRefresh:
    """What the job did for one experiment."""

    experiment: str
    plan: UnitValuesPlan
    refresh: RefreshReport


@dataclass(frozen=True)
class RefresherRun:
    """One run of the job: the experiments refreshed, and the compaction (None: not checked)."""

    refreshed: tuple[ExperimentRefresh, ...]
    compaction: CompactionReport | None


def experiment_unit_values_plan(
    experiment: ExperimentSpec, *, cuped: bool, covariate_days: float
) -> UnitValuesPlan | None:
    """The plan ``compute_experiment_result`` reads for ``experiment`` (None: no shared-scan metric)."""
    metrics = [metric for metric, _role in analyzed_metrics(experiment)]
    catalog = {m.name: m for m in (*DEFAULT_METRICS, *experiment.metrics.definitions)}
    plan = batch_plan(metrics, catalog)
    if not plan.sides:
        return None
    return unit_values_plan(plan, cuped=cuped, covariate_days=covariate_days)


def stored_parts(warehouse: Warehouse, experiment: str, plan: UnitValuesPlan) -> tuple[int, int]:
    """(rows, parts) of one key of ``xp.unit_values``."""
    bound = {"experiment": experiment, "plan_key": plan.key}
    row = warehouse.query_arrow(STORED_ROWS_SQL, bound).to_pylist()[0]
    return int(row["rows"]), int(row["parts"])


def compact(warehouse: Warehouse, keys: Sequence[tuple[str, UnitValuesPlan]]) -> CompactionReport:
    """Merge ``xp.unit_values`` (once) when a key of ``keys`` (experiment, plan) spans several parts."""
    started = time.perf_counter()
    rows = parts = 0
    due = False
    for experiment, plan in keys:
        key_rows, key_parts = stored_parts(warehouse, experiment, plan)
        rows, parts = rows + key_rows, max(parts, key_parts)
        due = due or key_parts > 1
    if due:
        warehouse.command(COMPACT_SQL)
        logger.info("unit values: %d rows in up to %d parts compacted in %.2f s", rows, parts,
                    time.perf_counter() - started)  # fmt: skip
    return CompactionReport(rows, parts, due, time.perf_counter() - started)


def refresh_experiment(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    *,
    cuped: bool,
    covariate_days: float,
    options: UnitValuesSettings | None = None,
) -> ExperimentRefresh | None:
    """Refresh the unit values of one experiment (no compaction); None: nothing to keep."""
    options = options if options is not None else UnitValuesSettings()
    plan = experiment_unit_values_plan(experiment, cuped=cuped, covariate_days=covariate_days)
    if plan is None:
        return None
    report = refresh(
        warehouse,
        experiment.key,
        plan,
        margin_seconds=options.results_unit_values_margin_seconds,
        fold=options.results_unit_values_fold,
    )
    return ExperimentRefresh(experiment.key, plan, report)


def refresh_running(
    warehouse: Warehouse,
    snapshot: RegistrySnapshot,
    *,
    covariate_days: float,
    options: UnitValuesSettings | None = None,
) -> RefresherRun:
    """Every running experiment of ``snapshot``: its plan (CUPED as its ``analysis:`` block says)
    refreshed; then one compaction when due (``XP_RESULTS_UNIT_VALUES_COMPACT``)."""
    from jobs.results.compute import experiment_plan

    options = options if options is not None else UnitValuesSettings()
    done: list[ExperimentRefresh] = []
    for experiment in snapshot.running_experiments():
        cuped = experiment_plan(snapshot, experiment).cuped
        found = refresh_experiment(
            warehouse, experiment, cuped=cuped, covariate_days=covariate_days, options=options
        )
        if found is not None:
            done.append(found)
    compaction = None
    if options.results_unit_values_compact and done:
        compaction = compact(warehouse, [(item.experiment, item.plan) for item in done])
    return RefresherRun(tuple(done), compaction)


def run_unit_values(
    settings: UnitValuesSettings, *, covariate_days: float, registry_timeout: float = 10.0
) -> RefresherRun:
    """``xp jobs run unit-values``: :func:`refresh_running` on the current registry and warehouse.

    ``settings`` (built at the entry point): the registry, the warehouse and the unit-values options;
    ``covariate_days``: the CUPED covariate window (``XP_ETL_COVARIATE_DAYS``). Does nothing with
    ``XP_RESULTS_UNIT_VALUES=false`` (results then never read the stored values).
    """
    from assignment.registry_topic import read_registry
    from xpcore.warehouse import open_warehouse

    options = settings
    if not options.results_unit_values:
        return RefresherRun((), None)
    snapshot = read_registry(settings, timeout=registry_timeout)
    warehouse = open_warehouse(settings)
    try:
        return refresh_running(warehouse, snapshot, covariate_days=covariate_days, options=options)
    finally:
        warehouse.close()
