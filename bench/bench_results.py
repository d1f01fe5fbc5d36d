"""Full experiment results on 10 M events: `xp results`' computation path end to end, against baselines.

A fresh chDB store (temporary directory) gets, by ``INSERT … SELECT FROM numbers()``: ``--units``
exposures of experiment 'bench' (3 variations, a ``country`` attribute with 14 values) and ``--events``
attributed events over 5 event names (the same rows in ``xp.events`` with ``--cuped``, plus as many
pre-exposure events, for the covariate). The experiment analyses 20 metrics (5 events × binary, count,
sum, count within 1 h). Timed, best of ``--repeat`` runs after one warm-up, in the same process:

- **unit values** (decision 0028; ``--unit-values-only`` runs just this and the live-scan baseline):
  the initial full build of ``xp.unit_values``; then, ``--repeat`` times after a warm-up round, ~1 %
  new attributed events (random units, like the load) followed by the full results
  (:func:`jobs.results.compute.compute_experiment_result`, ``segment="country"``, ``top=10``: 20 metrics ×
  3 variations × (1 + 11 segments)) **with the incremental refresh included** — the DESIGN.md budget
  (≤ 1 s on 10 M events); the same after ~1 % new events with the refresh timed on its own; the full
  results with nothing new; and the live scan (``XP_RESULTS_UNIT_VALUES=false``) on the same data, whose
  numbers must equal the unit values' (1e-9 relative) or the bench fails;
- **steady state** (``--steady``, bench/bench_results_steady.py, instead of everything else): ~1 % new
  events → the background refresher (``xp jobs run unit-values``: refresh + compaction) timed alone →
  the full results, best of 3; the read before/after a compaction; the live scan on the same data;
- **steady flow** (``--steady-flow``, the same module): +1 % events after the refresher ran, then the
  full results with the default staleness bound (no refresh), then, in rotating order, ``--fresh``
  overlaying the new rows at read time (decisions 0100, 0104), the same with 0100's statement (the
  baseline of 0104), ``--fresh`` folding them in (0099) and
  ``--fresh`` recomputing the touched units (the baseline, ``XP_RESULTS_UNIT_VALUES_FOLD=false``), each
  after its own +1 % and checked against the live scan; ``--new-units N`` adds N new units (exposures
  and ~10 events each) to every +1 %;
- **full**: the same results from the live scan (``XP_RESULTS_UNIT_VALUES=false``);
- **no segments**: the same without the breakdown (what ``xp results KEY`` does by default);
- **SQL only**: the full path's query (one scan for every metric and segment), rows fetched, no
  statistics;
- **per-metric queries** (baseline 1, the previous implementation): the per-metric query
  (``jobs.results.metric_sql.scan.metric_sums_sql``) and its segment form once per metric — 40 scans;
  run once (slow);
- **one scan** (baseline 2): a single bare ``GROUP BY variation_id, event_name`` over the events
  (sums of event values, not per-unit metrics: a lower bound for reading the data once);
- **CUPED** (``--cuped``): the no-segment path with the covariate computed from ``xp.events``;
- **where the time goes** (``--breakdown``): the full query's parts run on their own, interleaved
  round by round (``--repeat`` rounds, order alternating), as median wall and CPU time: the scan of the
  attributed events with and without ``FINAL``, the per-unit aggregation, the eligible population, the
  segments, and the whole query with and without ``FINAL``.

Every line gives the best wall time and the process CPU time of that run (chDB runs in this process,
so CPU time counts its threads): on a shared machine CPU time moves less with the load than wall time.

    .venv/bin/python bench/bench_results.py                       # 10 M events, 1 M units
    .venv/bin/python bench/bench_results.py --events 1000000 --units 100000 --cuped
    .venv/bin/python bench/bench_results.py --skip-per-metric --repeat 3 --breakdown
    .venv/bin/python bench/bench_results.py --unit-values-only --repeat 3
    .venv/bin/python bench/bench_results.py --steady --repeat 3   # refresher: bench/bench_results_steady.py
    .venv/bin/python bench/bench_results.py --steady-flow --repeat 3   # staleness bound vs --fresh vs scan
    .venv/bin/python bench/bench_results.py --steady-flow --repeat 3 --new-units 1000
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assignment.metrics_catalog import MetricDefinition, metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.analysis import analyzed_metrics
from jobs.results.batch import batch_plan
from jobs.results.compute import compute_experiment_result
from jobs.results.sums import _per_metric, fetch_segment_sums
from jobs.unit_values import UnitValuesSettings, refresh
from jobs.unit_values.plan import unit_values_plan
from schemas.records import ExperimentStatus
from xpcore.config import WarehouseSettings
from xpcore.warehouse import Warehouse, open_warehouse

BASE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 10, tzinfo=UTC)
EVENTS = ("purchase", "pageview", "add_to_cart", "search", "share")
COUNTRIES = ("us", "de", "fr", "gb", "it", "es", "nl", "se", "pl", "br", "in", "jp", "ca", "au")

EXPOSURES_SQL = """
INSERT INTO xp.exposures (exposure_id, unit_id, hash_attribute, experiment_key, variation_id, variation_key,
    overridden, source, attributes, exposed_at, schema_version)
SELECT concat('x', toString(number)), concat('u', toString(number)), 'id', 'bench',
    toUInt16(number % 3), concat('v', toString(number % 3)), false, 'loadgen',
    map('country', [{countries}][1 + (cityHash64(number) % 14) % (1 + cityHash64(number, 7) % 14)]),
    toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 86400), 1
FROM numbers({units})
"""
# Events: unit u = hash(n) mod units, so its variation is u % 3 and its first exposure u % 86400 s after
# BASE; the event happens 0–3 h after it (some outside the 1 h windows).
ATTRIBUTED_SQL = """
INSERT INTO xp.attributed_events (event_id, unit_id, experiment_key, variation_id, event_name, value,
    occurred_at, first_exposed_at)
SELECT concat('e', toString(number)), concat('u', toString(u)), 'bench', toUInt16(u % 3),
    [{events}][1 + number % 5], if(number % 5 = 0, toFloat64(number % 97) + 0.5, NULL),
    first + toIntervalSecond(number % 10800), first
FROM (SELECT number, cityHash64(number) % {units} AS u,
             toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(u % 86400) AS first
      FROM numbers({count}))
"""
RAW_SQL = """
INSERT INTO xp.events (event_id, unit_id, event_name, value, properties, occurred_at, schema_version)
SELECT concat('{prefix}', toString(number)), concat('u', toString(u)), [{events}][1 + number % 5],
    if(number % 5 = 0, toFloat64(number % 97) + 0.5, NULL), map(),
    first + toIntervalSecond({offset}), 1
FROM (SELECT number, cityHash64(number) % {units} AS u,
             toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(u % 86400) AS first
      FROM numbers({count}))
"""
NEW_EVENTS_SQL = ATTRIBUTED_SQL.replace("FROM numbers({count})", "FROM numbers({start}, {count})")
"""More attributed events like the load's (numbers from ``start`` on: new event ids, random units)."""
SCAN = UnitValuesSettings(results_unit_values=False)
STORED = UnitValuesSettings(results_unit_values=True, results_unit_values_margin_seconds=0.0)
"""Margin 0: the load happened seconds before the build; a margin of m s would add the units changed in the
m s before each refresh (every unit, right after a bulk load)."""

ONE_SCAN_SQL = """
SELECT variation_id, event_name, count() AS events, sum(ifNull(value, 0)) AS total
FROM xp.attributed_events WHERE experiment_key = 'bench'
GROUP BY variation_id, event_name
"""


def quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def metrics() -> list[MetricDefinition]:
    found = []
    for event in EVENTS:
        found.append(metric_from_dict({"name": f"{event}_any", "event": event, "aggregation": "binary"}))
        found.append(metric_from_dict({"name": f"{event}_count", "event": event, "aggregation": "count"}))
        found.append(metric_from_dict({"name": f"{event}_sum", "event": event, "aggregation": "sum"}))
        found.append(
            metric_from_dict({"name": f"{event}_1h", "event": event, "aggregation": "count", "window": "1h"})
        )
    return found


def experiment() -> ExperimentSpec:
    definitions = metrics()
    names = tuple(m.name for m in definitions)
    return ExperimentSpec(
        key="bench",
        name="bench",
        status=ExperimentStatus.RUNNING,
        feature_key="bench",
        variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / 3) for i in range(3)),
        metrics=MetricsSpec(primary=names[:1], secondary=names[1:], definitions=tuple(definitions)),
    )


def load(warehouse: Warehouse, units: int, events: int, cuped: bool) -> None:
    started = time.perf_counter()
    warehouse.command(EXPOSURES_SQL.format(countries=quoted(COUNTRIES), units=units))
    warehouse.command(ATTRIBUTED_SQL.format(events=quoted(EVENTS), units=units, count=events))
    if cuped:  # the same events raw, plus as many in the 14 days before first exposure
        warehouse.command(
            RAW_SQL.format(
                prefix="e", events=quoted(EVENTS), units=units, count=events, offset="number % 10800"
            )
        )
        warehouse.command(
            RAW_SQL.format(
                prefix="p", events=quoted(EVENTS), units=units, count=events, offset="-1 - number % 1209000"
            )
        )
    print(f"loaded {units:,} units, {events:,} events{' (+ raw and pre-exposure)' if cuped else ''} "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


def cpu_seconds() -> float:
    """User + system CPU time of this process (chDB's threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best(label: str, repeat: int, run: Callable[[], Any], warm_up: bool = True) -> float:
    if warm_up:
        run()
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    fastest = times.index(min(times))
    print(
        f"{label:34s} best {min(times) * 1000:8.0f} ms (cpu {cpu[fastest] * 1000:6.0f} ms)"
        f"   runs {', '.join(f'{t * 1000:.0f}' for t in times)}"
    )
    return min(times)


def _cte_prefix(sql: str, before: str) -> str:
    """The ``WITH`` clause of ``sql`` up to (not including) the CTE named ``before``."""
    head = sql.split(f"{before} AS", 1)[0].rstrip()
    return head.removesuffix(",")


def previous_query(plan: Any, parameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The full query as it was before the per-cell columns (one ``countIf`` per side, the event's
    position found with ``indexOf`` per row), with its parameters: the same-run baseline of the change."""
    per_unit, values = [], []
    for k, (_event, aggregation, _window) in enumerate(plan.sides, start=1):
        hit = (
            f"position = {{positions:Array(UInt32)}}[{k}] AND ({{windows:Array(Float64)}}[{k}] = 0"
            f" OR delay <= {{windows:Array(Float64)}}[{k}] * 1000)"
        )
        per_unit.append(f"countIf({hit}) AS c{k}")
        per_unit.append(f"sumIf(number, {hit}) AS t{k}" if aggregation == "sum" else f"0. AS t{k}")
        value = {"binary": "toFloat64(c{k} > 0)", "count": "toFloat64(c{k})", "sum": "t{k}"}[aggregation]
        values.append(value.format(k=k) + f" AS v{k}")
    sql = plan.sql()
    sql = sql.replace(
        "a.event_name AS event_name,",
        "indexOf({event_names:Array(String)}, a.event_name) AS position,",
    )
    sql = re.sub(
        r"SELECT unit_id, variation_id, .*?\n(\s+FROM matched)",
        lambda m: f"SELECT unit_id, variation_id, {', '.join(per_unit)}\n{m.group(1)}",
        sql,
        flags=re.S,
    )
    sql = re.sub(
        r"e\.variation_id AS variation_id, .*?\n(\s+FROM eligible)",
        lambda m: f"e.variation_id AS variation_id, {', '.join(values)}\n{m.group(1)}",
        sql,
        flags=re.S,
    )
    names = parameters["event_names"]
    bound = {k: v for k, v in parameters.items() if k not in ("cell_events", "cell_windows")}
    bound["positions"] = [names.index(event) + 1 for event, _aggregation, _window in plan.sides]
    bound["windows"] = [window for _event, _aggregation, window in plan.sides]
    return sql, bound


def same_rows(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> bool:
    """The same segments, variations and units, and sums equal up to float rounding (1e-9 relative)."""

    def close(a: list[float], b: list[float]) -> bool:
        return len(a) == len(b) and all(
            abs(x - y) <= 1e-9 * max(1.0, abs(x)) for x, y in zip(a, b, strict=True)
        )

    keys = ("segment", "variation_id", "units")
    return len(left) == len(right) and all(
        [a[k] for k in keys] == [b[k] for k in keys]
        and all(close(a[c], b[c]) for c in ("sums", "squares", "crosses"))
        for a, b in zip(left, right, strict=True)
    )


def breakdown_queries(sql: str) -> dict[str, str]:
    """The parts of the full query (``BatchPlan.sql()``) as queries of their own, each returning one row.

    Derived from the query's text by its CTE names (``eligible``, ``segments``, ``matched``, ``per_unit``,
    ``valued``): if those change, this fails loudly rather than timing something else.
    """
    for name in ("eligible", "segments", "matched", "per_unit", "valued"):
        if f"{name} AS" not in sql:
            raise SystemExit(f"breakdown: CTE {name!r} not found in the results query")
    per_unit = sql.split("per_unit AS", 1)[1].split("FROM matched", 1)[0]
    per_unit_columns = re.findall(r"\) AS (\w+)", per_unit)
    summed = " + ".join(f"toFloat64({c})" for c in per_unit_columns) or "0"
    scan = (
        "SELECT sum(cityHash64(unit_id)), sum(variation_id), sum(ifNull(value, 0.)), max(occurred_at),"
        " max(first_exposed_at), count() FROM xp.attributed_events {final}"
        " WHERE experiment_key = {{experiment:String}} AND event_name IN {{event_names:Array(String)}}"
        " AND occurred_at < {{until:DateTime64(3, 'UTC')}}"
    )
    return {
        "scan FINAL (the columns read)": scan.format(final="FINAL"),
        "scan without FINAL": scan.format(final=""),
        "per-unit aggregation (FINAL)": _cte_prefix(sql, "valued")
        + f"\nSELECT count(), sum({summed}) FROM per_unit",
        "eligible units": _cte_prefix(sql, "segments")
        + "\nSELECT count(), sum(variation_id), max(first_exposure) FROM eligible",
        "segments (first-exposure attribute)": _cte_prefix(sql, "matched")
        + "\nSELECT count(), sum(length(segment)) FROM segments",
        "eligible JOIN segments": _cte_prefix(sql, "matched")
        + "\nSELECT count(), sum(length(s.segment)) FROM eligible AS e"
        " LEFT JOIN segments AS s ON s.unit_id = e.unit_id",
        "whole query": sql,
        "whole query without FINAL": sql.replace(" FINAL", ""),
    }


def breakdown(warehouse: Warehouse, sql: str, parameters: dict[str, Any], rounds: int) -> None:
    """Median wall and CPU time of each part of the full query, interleaved round by round."""
    from xpcore.warehouse.sqltext import placeholders

    queries = breakdown_queries(sql)
    walls: dict[str, list[float]] = {label: [] for label in queries}
    cpus: dict[str, list[float]] = {label: [] for label in queries}
    labels = list(queries)
    for round_ in range(rounds + 1):  # round 0 warms up (and lets chDB compile the expressions)
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            query = queries[label]
            bound = {k: v for k, v in parameters.items() if k in placeholders(query)}
            start, start_cpu = time.perf_counter(), cpu_seconds()
            warehouse.query_arrow(query, bound)
            if round_:
                walls[label].append(time.perf_counter() - start)
                cpus[label].append(cpu_seconds() - start_cpu)
    print(f"where the time goes (median of {rounds} interleaved rounds):")
    for label in labels:
        print(
            f"  {label:38s} wall {statistics.median(walls[label]) * 1000:8.0f} ms"
            f"   cpu {statistics.median(cpus[label]) * 1000:8.0f} ms"
        )


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s, result) of one call."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    result = run()
    return time.perf_counter() - start, cpu_seconds() - start_cpu, result


def report(label: str, runs: list[tuple[float, float]]) -> None:
    """Best wall time of ``runs`` and its CPU time, then every run's wall time."""
    wall, cpu = min(runs)
    print(
        f"{label:34s} best {wall * 1000:8.0f} ms (cpu {cpu * 1000:6.0f} ms)"
        f"   runs {', '.join(f'{w * 1000:.0f}' for w, _ in runs)}   load {loadavg()}"
    )


def unit_values(warehouse: Warehouse, spec: ExperimentSpec, units: int, events: int, repeat: int) -> None:
    """The unit-values path (decision 0028) side by side with the live scan, on the same data."""
    layout = unit_values_plan(
        batch_plan([m for m, _ in analyzed_metrics(spec)], {m.name: m for m in spec.metrics.definitions}),
        cuped=False,
        covariate_days=14.0,
    )
    fresh, start = max(1, events // 100), events

    def more_events() -> None:
        nonlocal start
        warehouse.command(NEW_EVENTS_SQL.format(events=quoted(EVENTS), units=units, start=start, count=fresh))
        start += fresh

    def stored() -> Any:
        return compute_experiment_result(
            warehouse, spec, until=UNTIL, segment="country", top=10, unit_values=STORED
        )

    def scan() -> Any:
        return compute_experiment_result(
            warehouse, spec, until=UNTIL, segment="country", top=10, unit_values=SCAN
        )

    print(f"unit values: load average {loadavg()}")
    wall, cpu, _ = timed(lambda: refresh(warehouse, spec.key, layout, margin_seconds=0.0, rebuild=True))
    report("unit values: full build", [(wall, cpu)])
    with_refresh, refresh_only, recomputed = [], [], []
    for round_ in range(repeat + 1):  # round 0 warms up
        more_events()
        wall, cpu, _ = timed(stored)
        if round_:
            with_refresh.append((wall, cpu))
        more_events()
        wall, cpu, done = timed(lambda: refresh(warehouse, spec.key, layout, margin_seconds=0.0))
        if round_:
            refresh_only.append((wall, cpu))
            recomputed.append(done.units)
    report(f"full after +{fresh:,} events (refresh incl.)", with_refresh)
    report(f"  the refresh alone (+{fresh:,} events)", refresh_only)
    print(f"  units recomputed per refresh: {', '.join(f'{n:,}' for n in recomputed)} of {units:,}")
    report("full, nothing new (empty refresh)", [timed(stored)[:2] for _ in range(repeat)])
    baseline = [timed(scan) for _ in range(max(1, repeat - 1))]
    report("full, live scan (baseline)", [run[:2] for run in baseline])
    fast, slow = stored().to_json(), baseline[-1][2].to_json()
    fast["computed_at"] = slow["computed_at"]
    if not same_document(fast, slow):
        raise SystemExit("unit values and the live scan disagree")
    print(f"unit values == live scan (1e-9 relative); {start - events:,} events added; load {loadavg()}")


def same_document(left: Any, right: Any) -> bool:
    """JSON documents equal, floats up to 1e-9 relative (NaN equal to NaN)."""
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_document(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_document(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) and isinstance(right, float):
        return (left != left and right != right) or abs(left - right) <= 1e-9 * max(
            1.0, abs(left), abs(right)
        )
    return bool(left == right)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cuped", action="store_true", help="Also load raw events and time CUPED.")
    parser.add_argument("--skip-per-metric", action="store_true", help="Skip the slow 40-query baseline.")
    parser.add_argument("--breakdown", action="store_true", help="Also time the full query's parts.")
    parser.add_argument(
        "--unit-values-only", action="store_true", help="Only the unit values and the live-scan baseline."
    )
    parser.add_argument(
        "--steady",
        action="store_true",
        help="Only the steady state: +1 %% events → background refresher (+ compaction) → full results, "
        "and the live-scan baseline (bench/bench_results_steady.py).",
    )
    parser.add_argument(
        "--steady-flow",
        action="store_true",
        help="Only the steady flow: +1 %% events after the refresher, then the full results with the "
        "default staleness bound, with --fresh, and the live scan (bench/bench_results_steady.py).",
    )
    parser.add_argument(
        "--new-units",
        type=int,
        default=0,
        help="With --steady-flow: every +1 %% of events also brings this many new units (exposures, "
        "~10 events each): units the overlay must recompute (decision 0100).",
    )
    args = parser.parse_args()
    spec = experiment()
    with tempfile.TemporaryDirectory(prefix="xp-bench-results-") as home:
        settings = WarehouseSettings(home=Path(home), clickhouse_url=None, store_wait_seconds=0)
        warehouse = open_warehouse(settings)
        try:
            load(warehouse, args.units, args.events, args.cuped)
            if args.steady_flow:
                from bench_results_steady import steady_flow

                steady_flow(warehouse, spec, args.units, args.events, args.repeat, args.new_units)
                return
            if args.steady:
                from bench_results_steady import steady

                steady(warehouse, spec, args.units, args.events, args.repeat)
                return
            unit_values(warehouse, spec, args.units, args.events, args.repeat)
            if args.unit_values_only:
                return

            def full() -> Any:
                return compute_experiment_result(
                    warehouse, spec, until=UNTIL, segment="country", top=10, unit_values=SCAN
                )

            def sql_only() -> None:
                fetch_segment_sums(warehouse, spec, dimension="country", since=BASE, until=UNTIL)

            from jobs.results.batch import batch_plan
            from jobs.results.sums import experiment_catalog

            batch = batch_plan([m for m, _ in analyzed_metrics(spec)], experiment_catalog(spec))
            bound = batch.sql_parameters(experiment=spec.key, since=BASE, until=UNTIL, dimension="country")
            previous_sql, previous_bound = previous_query(batch, bound)
            current = warehouse.query_arrow(batch.sql(), bound).to_pylist()
            if not same_rows(warehouse.query_arrow(previous_sql, previous_bound).to_pylist(), current):
                raise SystemExit("the previous query's rows differ from the current query's")

            def previous() -> None:
                warehouse.query_arrow(previous_sql, previous_bound)

            def per_metric() -> None:
                metrics = [m for m, _ in analyzed_metrics(spec)]
                bounds: dict[str, Any] = {"since": BASE, "until": UNTIL}
                _per_metric(warehouse, spec, metrics, **bounds)
                _per_metric(warehouse, spec, metrics, segment=True, dimension="country", **bounds)

            result = full()
            cells = sum(len(m.variants) for m in result.metrics) * (1 + len(result.segments.segments))
            print(f"{len(result.metrics)} metrics, {cells} variation cells with segments; "
                  f"units {sum(v.units for v in result.metrics[0].variants):,}")  # fmt: skip
            best("full (20 metrics × 3 × 10 segments)", args.repeat, full)
            best(
                "no segments",
                args.repeat,
                lambda: compute_experiment_result(warehouse, spec, until=UNTIL, unit_values=SCAN),
            )
            best("SQL only (1 query)", args.repeat, sql_only)
            best("SQL only, previous per-side query", args.repeat, previous)
            best(
                "one scan (baseline: bare GROUP BY)", args.repeat, lambda: warehouse.query_arrow(ONE_SCAN_SQL)
            )
            if not args.skip_per_metric:
                best("per-metric (baseline: 40 queries)", 1, per_metric, warm_up=False)
            if args.breakdown:
                from jobs.results.batch import batch_plan
                from jobs.results.sums import experiment_catalog

                batch = batch_plan([m for m, _ in analyzed_metrics(spec)], experiment_catalog(spec))
                bound = batch.sql_parameters(
                    experiment=spec.key, since=BASE, until=UNTIL, dimension="country"
                )
                breakdown(warehouse, batch.sql(), bound, args.repeat)
            if args.cuped:
                plan = AnalysisPlan(cuped=True)
                best(
                    "CUPED, no segments",
                    args.repeat,
                    lambda: compute_experiment_result(
                        warehouse, spec, until=UNTIL, plan=plan, unit_values=SCAN
                    ),
                )
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()
