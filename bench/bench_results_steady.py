"""Full results in the steady state of issue #5: the background refresher keeps ``xp.unit_values`` current.

Run through ``bench/bench_results.py --steady`` (same load: ``--units`` exposures, ``--events``
attributed events, 20 metrics). After the initial full build, ``--repeat`` rounds (plus one warm-up)
of:

1. ~1 % new attributed events on random units (like the load);
2. the background refresher alone (:func:`jobs.unit_values_job.refresh_running`, what
   ``xp jobs run unit-values`` does once it has the registry: the incremental refresh, then
   ``OPTIMIZE … FINAL`` when the key's rows span several parts), timed, with the compaction's share;
3. the full results call (``compute_experiment_result``, ``segment="country"``, ``top=10``: 20 metrics
   × 3 variations × (1 + 11 segments)), best of 3 — it includes its own refresh, which finds nothing new.

Then the read before and after a compaction (rows piled up by 3 rounds without one), the parts of the
read path (state, clock, changed-units check, the ``FINAL`` read and, as a lower bound, the same read
without ``FINAL``), and the live scan
(``XP_RESULTS_UNIT_VALUES=false``) on the same data, whose numbers must equal the unit values' (1e-9
relative) or the bench fails. The watermark margin is 0 s (one process, statements serialized, no
clock skew); the cost of the 30 s default is stated in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any

from bench_results import (
    EVENTS,
    NEW_EVENTS_SQL,
    SCAN,
    STORED,
    UNTIL,
    loadavg,
    quoted,
    report,
    same_document,
    timed,
)

from assignment.registry import ExperimentSpec, RegistrySnapshot
from jobs.results_store import compute_experiment_result
from jobs.unit_values import EPOCH, UnitValuesSettings, read_state, refresh
from jobs.unit_values_job import compact, experiment_unit_values_plan, refresh_running, stored_parts
from jobs.unit_values_sql import NOW_SQL, build_parameters, changed_units_sql, read_sql
from xpstream.warehouse import Warehouse
from xpstream.warehouse.sqltext import placeholders

__all__ = ["steady"]

REFRESHER = UnitValuesSettings(results_unit_values_margin_seconds=0.0)
NO_COMPACTION = UnitValuesSettings(results_unit_values_margin_seconds=0.0, results_unit_values_compact=False)


def steady(warehouse: Warehouse, spec: ExperimentSpec, units: int, events: int, repeat: int) -> None:
    """The steady state side by side with the live scan, on the same data (see the module docstring)."""
    plan = experiment_unit_values_plan(spec, cuped=False, covariate_days=14.0)
    assert plan is not None
    fresh, start = max(1, events // 100), events

    def more_events() -> None:
        nonlocal start
        warehouse.command(NEW_EVENTS_SQL.format(events=quoted(EVENTS), units=units, start=start, count=fresh))
        start += fresh

    def results() -> Any:
        return compute_experiment_result(
            warehouse, spec, until=UNTIL, segment="country", top=10, unit_values=STORED
        )

    snapshot = RegistrySnapshot(experiments={spec.key: spec})

    def stored() -> str:
        rows, parts = stored_parts(warehouse, spec.key, plan)
        return f"{rows:,} rows in {parts} parts"

    def refresher(options: UnitValuesSettings) -> Any:
        return refresh_running(warehouse, snapshot, covariate_days=14.0, options=options)

    print(f"steady state: load average {loadavg()}")
    wall, cpu, _ = timed(lambda: refresh(warehouse, spec.key, plan, margin_seconds=0.0, rebuild=True))
    report("steady: full build", [(wall, cpu)])
    refreshes, compactions, reads, notes = [], [], [], []
    for round_ in range(repeat + 1):  # round 0 warms up
        more_events()
        wall, cpu, run = timed(lambda: refresher(REFRESHER))
        calls = [timed(results)[:2] for _ in range(3)]
        if round_:
            refreshes.append((wall, cpu))
            reads.append(min(calls))
            merged = run.compaction
            if merged is not None and merged.compacted:
                compactions.append(merged.seconds)
            notes.append(
                f"{run.refreshed[0].refresh.units:,} units"
                + (f", compacted {merged.rows:,} rows" if merged is not None and merged.compacted else "")
                + f", read {' / '.join(f'{w * 1000:.0f}' for w, _ in calls)} ms"
            )
    report(f"steady: refresher per +{fresh:,} events", refreshes)
    print(f"  rounds: {'; '.join(notes)}")
    if compactions:
        print(f"  compaction (OPTIMIZE FINAL) inside those: {', '.join(f'{s:.2f} s' for s in compactions)}")
    report("steady: full results after it (best of 3)", reads)

    for _ in range(3):  # pile replaced rows up (no compaction), then compare the read before/after one
        more_events()
        refresher(NO_COMPACTION)
    piled = stored()
    before = [timed(results)[:2] for _ in range(repeat)]
    wall, cpu, _ = timed(lambda: compact(warehouse, [(spec.key, plan)]))
    after = [timed(results)[:2] for _ in range(repeat)]
    report(f"full results, {piled}", before)
    report("compaction (OPTIMIZE FINAL)", [(wall, cpu)])
    report(f"full results, {stored()}", after)
    parts(warehouse, spec, plan, repeat)

    baseline = [timed(lambda: compute_experiment_result(
        warehouse, spec, until=UNTIL, segment="country", top=10, unit_values=SCAN
    )) for _ in range(max(1, repeat - 1))]  # fmt: skip
    report("steady: full, live scan (baseline)", [run[:2] for run in baseline])
    fast, slow = results().to_json(), baseline[-1][2].to_json()
    fast["computed_at"] = slow["computed_at"]
    if not same_document(fast, slow):
        raise SystemExit("unit values and the live scan disagree")
    print(f"unit values == live scan (1e-9 relative); {start - events:,} events added; load {loadavg()}")


def parts(warehouse: Warehouse, spec: ExperimentSpec, plan: Any, repeat: int) -> None:
    """The read path's statements on their own, values current: where the time of a call goes."""
    state = read_state(warehouse, spec.key, plan)
    assert state is not None
    parameters = build_parameters(plan, experiment=spec.key, version=0, watermark=state.watermark)
    counting = changed_units_sql(plan)
    bound = {k: v for k, v in parameters.items() if k in placeholders(counting)}
    read = {
        "experiment": spec.key,
        "plan_key": plan.key,
        "since": EPOCH,
        "until": UNTIL,
        "dimension": "country",
    }
    unmerged = read_sql(plan).replace("xp.unit_values FINAL", "xp.unit_values")
    steps = {
        "state (unit_values_state FINAL)": lambda: read_state(warehouse, spec.key, plan),
        "clock (now64)": lambda: warehouse.query_arrow(NOW_SQL),
        "changed-units check": lambda: warehouse.query_arrow(counting, bound),
        "FINAL read (GROUP BY segment)": lambda: warehouse.query_arrow(read_sql(plan), read),
        "same read without FINAL (bound)": lambda: warehouse.query_arrow(unmerged, read),
    }
    for label, step in steps.items():
        report(f"  part: {label}", [timed(step)[:2] for _ in range(repeat)])
