"""Full results in the steady state of issue #5: the background refresher keeps ``xp.unit_values`` current.

Run through ``bench/bench_results.py --steady`` (same load: ``--units`` exposures, ``--events``
attributed events, 20 metrics). After the initial full build, ``--repeat`` rounds (plus one warm-up)
of:

1. ~1 % new attributed events on random units (like the load);
2. the background refresher alone (:func:`jobs.unit_values.job.refresh_running`, what
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
from unittest.mock import patch

from bench_results import (
    ATTRIBUTED_SQL,
    COUNTRIES,
    EVENTS,
    EXPOSURES_SQL,
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
from jobs.results.compute import compute_experiment_result
from jobs.results.metric_sql import unit_overlay
from jobs.results.metric_sql.unit_values import build_parameters, changed_units_sql, read_sql
from jobs.unit_values import EPOCH, UnitValuesSettings, read_state, refresh
from jobs.unit_values.job import compact, experiment_unit_values_plan, refresh_running, stored_parts
from jobs.unit_values.sql import NOW_SQL
from xpcore.warehouse import Warehouse
from xpcore.warehouse.sqltext import placeholders

__all__ = ["steady", "steady_flow"]

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


FLOW = UnitValuesSettings(results_unit_values_margin_seconds=0.0)
"""The default staleness bound (``XP_RESULTS_MAX_STALENESS_SECONDS``, 60 s), margin 0 as above; a
``--fresh`` call overlays the new rows at read time and writes nothing (decision 0100)."""
FOLD = UnitValuesSettings(results_unit_values_margin_seconds=0.0, results_unit_values_overlay=False)
"""``--fresh`` refreshes first, folding the new rows into the stored values (decision 0099), then reads."""
RECOMPUTE = UnitValuesSettings(
    results_unit_values_margin_seconds=0.0, results_unit_values_overlay=False, results_unit_values_fold=False
)
"""The baseline of ``--fresh``: the refresh recomputes every touched unit in full (before decision 0099)."""
OVERLAY_0100 = UnitValuesSettings(results_unit_values_margin_seconds=0.0)
"""``FLOW`` with decision 0100's statement (its ``arrayMap`` additions, :func:`added_arrays_0100`), the
baseline of decision 0104 in the same run: a distinct object, told apart by identity."""


def added_arrays_0100(plan: Any) -> tuple[str, str]:
    """Decision 0100's additions of a touched unit's delta (a lambda per cell over ``range``)."""
    cells, summed = len(plan.cells), len(plan.summed)
    i = "indexOf(d.variations, s.variation_id)"
    return (
        f"arrayMap(j -> toUInt32(s.counts[j] + d.counts_by[{i}][j]), range(1, {cells + 1}))",
        f"arrayMap(j -> s.totals[j] + d.totals_by[{i}][j], range(1, {summed + 1}))",
    )


NEW_UNITS_SQL = EXPOSURES_SQL.replace("FROM numbers({units})", "FROM numbers({start}, {count})")
NEW_UNIT_EVENTS_SQL = (
    ATTRIBUTED_SQL.replace("concat('e', toString(number))", "concat('n', toString(number))")
    .replace("cityHash64(number) % {units}", "{first_unit} + number % {new_units}")
    .replace("FROM numbers({count})", "FROM numbers({start}, {count})")
)
"""Events of the new units (ids ``n…``), ~10 each, as the load's."""


def numbers(document: dict[str, Any]) -> dict[str, Any]:
    """A results document without its timestamps (when it was computed, up to when the data goes)."""
    return {k: v for k, v in document.items() if k not in ("computed_at", "data_as_of")}


def steady_flow(
    warehouse: Warehouse, spec: ExperimentSpec, units: int, events: int, repeat: int, new_units: int = 0
) -> None:
    """Under a steady flow (issue #5, decision 0028's staleness bound), ``--repeat`` rounds (plus one
    warm-up) of: +1 % events (and ``new_units`` new units with their exposures and ~10 events each), the
    refresher (background), the full results (values current); +1 % more events, then the full results
    ``until`` now with the default bound (best of 3: reads as of the refresh, must not refresh and must
    give the numbers of before the new events); then four ``fresh=True`` calls, each
    over its own +1 % (after an overlay, which writes nothing, an untimed refresh folds its +1 % in): the
    overlay (decisions 0100 and 0104, writes nothing), the overlay with 0100's statement (the baseline of
    0104; the two overlays take turns at being first), the fold (0099: refresh, then read)
    and the recomputation of the touched units (the baseline, ``XP_RESULTS_UNIT_VALUES_FOLD=false``),
    each followed by the live scan on the same data (must equal it)."""
    plan = experiment_unit_values_plan(spec, cuped=False, covariate_days=14.0)
    assert plan is not None
    fresh, start = max(1, events // 100), events
    next_unit, new_start = units, 0
    snapshot = RegistrySnapshot(experiments={spec.key: spec})

    def more_events() -> None:
        nonlocal start, next_unit, new_start
        warehouse.command(NEW_EVENTS_SQL.format(events=quoted(EVENTS), units=units, start=start, count=fresh))
        start += fresh
        if new_units:
            warehouse.command(
                NEW_UNITS_SQL.format(countries=quoted(COUNTRIES), start=next_unit, count=new_units)
            )
            warehouse.command(
                NEW_UNIT_EVENTS_SQL.format(
                    events=quoted(EVENTS),
                    first_unit=next_unit,
                    new_units=new_units,
                    start=new_start,
                    count=10 * new_units,
                    units=units,
                )
            )
            next_unit += new_units
            new_start += 10 * new_units

    def call(options: UnitValuesSettings, **kw: Any) -> Any:
        if options is OVERLAY_0100:
            with patch.object(unit_overlay, "added_arrays", added_arrays_0100):
                return call(FLOW, **kw)
        return compute_experiment_result(
            warehouse, spec, segment="country", top=10, unit_values=options, **kw
        )

    def forced(options: UnitValuesSettings, before: dict[str, Any] | None) -> tuple[float, float, int]:
        """One ``--fresh`` call over the events stored since the last refresh, checked against the scan."""
        state = read_state(warehouse, spec.key, plan)
        wall, cpu, result = timed(lambda: call(options, fresh=True))
        after = read_state(warehouse, spec.key, plan)
        overlay = options is FLOW or options is OVERLAY_0100
        if overlay and after != state:
            raise SystemExit("the overlay wrote")
        if not overlay and after == state:
            raise SystemExit("--fresh did not refresh")
        if before is not None and same_document(numbers(result.to_json()), before):
            raise SystemExit("the new events changed no number: the bounded check would prove nothing")
        scan = timed(lambda: call(SCAN))
        if not same_document(numbers(result.to_json()), numbers(scan[2].to_json())):
            raise SystemExit(f"fresh unit values ({names[id(options)]}) and the live scan disagree")
        scans.append(scan[:2])
        return wall, cpu, 0 if overlay else stored_units(after)

    def stored_units(state: Any) -> int:
        rows = warehouse.query_arrow(
            "SELECT count() AS n FROM xp.unit_values WHERE experiment_key = {e:String}"
            " AND plan_key = {p:String} AND version = {v:UInt64}",
            {"e": spec.key, "p": plan.key, "v": state.version},
        )
        return int(rows.column("n")[0].as_py())

    print(
        f"steady flow (staleness bound {FLOW.results_max_staleness_seconds:.0f} s"
        f"{f', {new_units:,} new units per +1 %' if new_units else ''}): load average {loadavg()}"
    )
    wall, cpu, _ = timed(lambda: refresh(warehouse, spec.key, plan, margin_seconds=0.0, rebuild=True))
    report("flow: full build", [(wall, cpu)])
    names = {
        id(FLOW): "overlay",
        id(OVERLAY_0100): "overlay 0100",
        id(FOLD): "fold",
        id(RECOMPUTE): "recompute",
    }
    bounded: list[tuple[float, float]] = []
    forced_runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names.values()}
    scans: list[tuple[float, float]] = []
    refreshers: list[tuple[float, float]] = []
    lags: list[float] = []
    notes: list[str] = []
    for round_ in range(repeat + 1):  # round 0 warms up
        more_events()
        refresher_run = timed(lambda: refresh_running(warehouse, snapshot, covariate_days=14.0, options=FLOW))
        before = numbers(call(FLOW).to_json())
        state = read_state(warehouse, spec.key, plan)
        more_events()  # stored after the refresh: a call within the bound does not fold them in
        calls = [timed(lambda: call(FLOW)) for _ in range(3)]
        if read_state(warehouse, spec.key, plan) != state:
            raise SystemExit("a call within the staleness bound refreshed")
        if not all(same_document(numbers(run[2].to_json()), before) for run in calls):
            raise SystemExit("a call within the staleness bound is not the result as of the refresh")
        runs: dict[str, tuple[float, float, int]] = {}
        # the two overlays first, right after the refresher's compaction, taking turns at being first
        # (what precedes a call, a fold's or a recomputation's part, changes its FINAL reads' cost)
        order = ((FLOW, OVERLAY_0100) if round_ % 2 else (OVERLAY_0100, FLOW)) + (FOLD, RECOMPUTE)
        for position, options in enumerate(order):
            if position:
                more_events()  # each later call gets its own +1 %
            runs[names[id(options)]] = forced(options, before if not position else None)
            if options is FLOW or options is OVERLAY_0100:  # an overlay wrote nothing: fold its +1 % in
                refresh(warehouse, spec.key, plan, margin_seconds=0.0)  # (untimed): the next sees its own
        if round_:
            refreshers.append(refresher_run[:2])
            bounded.append(min(run[:2] for run in calls))
            for name, run in runs.items():
                forced_runs[name].append(run[:2])
            lags.extend((run[2].computed_at - run[2].data_as_of).total_seconds() for run in calls)
            notes.append(
                f"bound {' / '.join(f'{run[0] * 1000:.0f}' for run in calls)} ms, fresh overlay "
                f"{runs['overlay'][0] * 1000:.0f} ms, overlay 0100 "
                f"{runs['overlay 0100'][0] * 1000:.0f} ms, fold {runs['fold'][0] * 1000:.0f} ms "
                f"({runs['fold'][2]:,} units written), recompute {runs['recompute'][0] * 1000:.0f} ms "
                f"({runs['recompute'][2]:,}), load {loadavg()}"
            )
    report("flow: refresher per +1 % (background)", refreshers)
    report("flow: full, default bound (best of 3)", bounded)
    print(f"  rounds: {'; '.join(notes)}")
    print(f"  data_as_of behind computed_at: {min(lags):.1f}–{max(lags):.1f} s")
    extra = f" + {new_units:,} new units" if new_units else ""
    for name in ("overlay", "overlay 0100", "fold", "recompute"):
        runs_ = forced_runs[name]
        cpu = sorted(c for _, c in runs_)
        report(f"flow: full, --fresh, {name} (+{fresh:,}{extra})", runs_)
        print(f"  {name}: median CPU {cpu[len(cpu) // 2] * 1000:.0f} ms, CPU per run "
              f"{', '.join(f'{c * 1000:.0f}' for _, c in runs_)} ms")  # fmt: skip
    report("flow: full, live scan (baseline)", scans)
    print(f"bounded == as of the refresh, fresh (all four) == live scan (1e-9 relative); load {loadavg()}")
