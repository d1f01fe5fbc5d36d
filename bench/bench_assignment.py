"""In-process assignment: xpstream's engine vs the GrowthBook Python SDK, same payload, same units.

Budget (DESIGN.md): ≥ 10× the GrowthBook Python SDK. Both engines evaluate every feature of the
payload below for every unit, in the same process and run:

- ``growthbook``: the SDK's fastest honest usage: one ``GrowthBook`` instance built once with the
  payload, ``set_attributes(unit)`` then ``eval_feature(key)`` per unit (no tracking callback);
- ``xpstream (per unit)``: ``CompiledPayload.evaluate(key, attributes)`` in a loop (one payload
  compiled once, like the SDK instance);
- ``xpstream (bulk)``: ``CompiledPayload.evaluate_many(key, units)`` (numpy-vectorized hashing);
- ``xpstream (per unit, pure-Python hashes)``: the per-unit loop on a payload compiled with the C
  hashes switched off (:func:`assignment.hashing.use_native_hashing`), i.e. what a machine without
  a C compiler runs; absent when the C module is not built (then the per-unit row is that path).

The engines alternate in chunks of ``--chunk`` units (rotating which runs first); the table gives
the ratio of total times and the median of the per-chunk ratios (robust to bursts of load from
other processes on a shared machine).

Every unit's value, source and variation are checked to agree between the SDK and both xpstream
paths (a correctness check, not a timing one). Run::

    .venv/bin/python bench/bench_assignment.py [--units 100000] [--format json]
    .venv/bin/python bench/bench_assignment.py --instructions [--units 1000]   # callgrind counts

``--instructions`` counts CPU instructions instead of time (stable on a busy machine): each engine
runs under ``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``) for 0 and ``--units`` units after the
same warm-up; the difference, minus building the units, divided by the evaluations, is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout": {
            "defaultValue": "control",
            "rules": [
                {"id": "qa", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": "qa"},
                {
                    "id": "checkout-exp",
                    "key": "checkout-exp",
                    "seed": "checkout-exp",
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "condition": {"country": {"$in": ["US", "CA", "GB"]}, "app_version": {"$vgte": "2.0.0"}},
                    "namespace": ["checkout", 0, 0.8],
                    "coverage": 0.9,
                    "variations": ["control", "one-page", "express"],
                    "weights": [0.34, 0.33, 0.33],
                    "meta": [{"key": "control"}, {"key": "one-page"}, {"key": "express"}],
                },
            ],
        },
        "new-banner": {"defaultValue": False, "rules": [{"force": True, "coverage": 0.5}]},
        "pricing": {
            "defaultValue": 10,
            "rules": [
                {
                    "key": "pricing-exp",
                    "condition": {"$or": [{"plan": "pro"}, {"age": {"$gte": 30}}]},
                    "variations": [10, 12],
                    "weights": [0.5, 0.5],
                }
            ],
        },
    }
}
COUNTRIES = ["US", "CA", "FR", "GB", "DE"]
PLANS = ["free", "pro", "team"]


def make_units(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Deterministic synthetic units with a few targeting attributes (unit ``start`` onwards)."""
    return [
        {
            "id": f"user-{i:07d}",
            "country": COUNTRIES[i % 5],
            "app_version": f"{1 + i % 3}.{i % 7}.{i % 11}",
            "email": "qa@example.com" if i % 97 == 0 else f"user{i}@mail.test",
            "plan": PLANS[i % 3],
            "age": 18 + i % 50,
        }
        for i in range(start, start + count)
    ]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def growthbook_engine() -> Any:
    from growthbook import GrowthBook

    logging.getLogger("growthbook").setLevel(logging.ERROR)
    return GrowthBook(features=PAYLOAD["features"])


def xpstream_engine(native: bool = True) -> Any:
    from assignment import compile_payload
    from assignment.hashing import use_native_hashing

    previous = use_native_hashing(native)
    try:
        return compile_payload(PAYLOAD)
    finally:
        use_native_hashing(previous)


def run_growthbook(
    gb: Any, units: list[dict[str, Any]], keys: list[str]
) -> dict[str, list[tuple[Any, str, int | None]]]:
    out: dict[str, list[tuple[Any, str, int | None]]] = {key: [] for key in keys}
    for unit in units:
        gb.set_attributes(unit)
        for key in keys:
            result = gb.eval_feature(key)
            experiment_result = result.experimentResult
            in_experiment = result.source == "experiment" and experiment_result is not None
            variation = experiment_result.variationId if in_experiment and experiment_result else None
            out[key].append((result.value, result.source, variation))
    return out


def run_per_unit(payload: Any, units: list[dict[str, Any]], keys: list[str]) -> dict[str, list[Any]]:
    evaluate = payload.evaluate
    out: dict[str, list[Any]] = {key: [] for key in keys}
    for unit in units:
        for key in keys:
            out[key].append(evaluate(key, unit))
    return out


def run_bulk(payload: Any, units: list[dict[str, Any]], keys: list[str]) -> dict[str, list[Any]]:
    return {key: payload.evaluate_many(key, units) for key in keys}


def check_agreement(
    sdk: dict[str, list[tuple[Any, str, int | None]]], ours: dict[str, list[Any]], label: str
) -> None:
    for key, expected in sdk.items():
        for index, (want, got) in enumerate(zip(expected, ours[key], strict=True)):
            mine = (got.value, got.source, got.variation_id)
            if mine != want:
                raise SystemExit(
                    f"{label} disagrees with GrowthBook on {key!r}, unit {index}: {mine} != {want}"
                )


def _callgrind_child(engine: str, count: int) -> None:
    """What one callgrind run executes: warm up on 500 units, then evaluate ``count`` units."""
    keys = list(PAYLOAD["features"])
    units = make_units(count + 500)
    warm, units = units[count:], units[:count]
    if engine == "sdk":
        gb = growthbook_engine()
        run_growthbook(gb, warm, keys)
        run_growthbook(gb, units, keys)
    elif engine in ("c_hashes", "pure_hashes"):
        payload = xpstream_engine(native=engine == "c_hashes")
        run_per_unit(payload, warm, keys)
        run_per_unit(payload, units, keys)
    # "units": only the units are built (subtracted from the others)


def count_instructions(count: int) -> dict[str, float]:
    """Instructions per evaluation for each engine (callgrind, 0 vs ``count`` units)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("error: --instructions needs valgrind (apt-get install -y valgrind)")
    totals: dict[str, int] = {}
    for engine in ("units", "sdk", "c_hashes", "pure_hashes"):
        for units in (0, count):
            output = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--callgrind-out-file=/dev/null",
                    sys.executable,
                    __file__,
                    "--callgrind-child",
                    engine,
                    "--units",
                    str(units),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                check=True,
            )
            found = re.search(r"Collected : (\d+)", output.stderr)
            if found is None:
                raise SystemExit(f"error: no callgrind total for {engine}: {output.stderr[-500:]}")
            totals[f"{engine}/{units}"] = int(found.group(1))
    per_unit = {
        e: (totals[f"{e}/{count}"] - totals[f"{e}/0"]) / count
        for e in ("units", "sdk", "c_hashes", "pure_hashes")
    }
    evaluations = len(PAYLOAD["features"])
    return {e: (per_unit[e] - per_unit["units"]) / evaluations for e in ("sdk", "c_hashes", "pure_hashes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=100_000, help="units to evaluate (default 100000)")
    parser.add_argument("--chunk", type=int, default=2_000, help="units per interleaved chunk")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions with callgrind (use ~1000 units)"
    )
    parser.add_argument("--callgrind-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind_child:
        _callgrind_child(args.callgrind_child, args.units)
        return 0
    if args.instructions:
        per_eval = count_instructions(args.units)
        sdk = per_eval["sdk"]
        if args.format == "json":
            sys.stdout.write(json.dumps({"instructions_per_evaluation": per_eval}) + "\n")
            return 0
        print(
            f"instructions per evaluation (callgrind, {args.units} units × {len(PAYLOAD['features'])} "
            "features):"
        )
        for engine, label in (
            ("sdk", "growthbook SDK"),
            ("c_hashes", "xpstream per unit, C hashes"),
            ("pure_hashes", "xpstream per unit, pure-Python hashes"),
        ):
            print(
                f"  {label:<40} {per_eval[engine]:>10,.0f}   "
                f"{sdk / per_eval[engine]:>5.1f}× fewer than the SDK"
            )
        return 0

    import growthbook

    from assignment.hashing import native_hashing_available

    native = native_hashing_available()
    units = make_units(args.units)
    keys = list(PAYLOAD["features"])
    evaluations = len(units) * len(keys)
    # Each engine is built once, untimed (the SDK's constructor, our compile_payload: a few ms),
    # and warmed up on other units.
    gb, payload = growthbook_engine(), xpstream_engine()
    pure_payload = xpstream_engine(native=False)
    warm = make_units(len(units) + 500)[len(units) :]
    run_growthbook(gb, warm, keys), run_per_unit(payload, warm, keys), run_bulk(payload, warm, keys)
    run_per_unit(pure_payload, warm, keys)
    # Interleave the three engines in short chunks, rotating which goes first, so that load
    # from other processes on the (shared) machine weighs on all of them alike; besides the
    # totals, the median of the per-chunk ratios is reported (robust to a burst of load).
    names: tuple[str, ...] = (
        ("sdk", "per_unit", "bulk", "per_unit_pure") if native else ("sdk", "per_unit", "bulk")
    )
    engines: dict[str, Callable[..., dict[str, list[Any]]]] = {
        "sdk": partial(run_growthbook, gb),
        "per_unit": partial(run_per_unit, payload),
        "bulk": partial(run_bulk, payload),
        "per_unit_pure": partial(run_per_unit, pure_payload),
    }
    sinks: dict[str, dict[str, list[Any]]] = {name: {key: [] for key in keys} for name in names}
    seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    chunk_ratios: dict[str, list[float]] = {name: [] for name in names}
    chunk = max(1, min(args.chunk, len(units)))
    for number, start in enumerate(range(0, len(units), chunk)):
        part = units[start : start + chunk]
        order = names[number % len(names) :] + names[: number % len(names)]
        took: dict[str, float] = {}
        for name in order:
            took[name], out = timed(partial(engines[name], part, keys))
            for key in keys:
                sinks[name][key].extend(out[key])
            seconds[name] += took[name]
        for name in names:
            chunk_ratios[name].append(took["sdk"] / took[name])
    check_agreement(sinks["sdk"], sinks["per_unit"], "xpstream per unit")
    check_agreement(sinks["sdk"], sinks["bulk"], "xpstream bulk")
    if native:
        check_agreement(sinks["sdk"], sinks["per_unit_pure"], "xpstream per unit (pure-Python hashes)")

    labels = {
        "sdk": f"growthbook {growthbook.__version__} (SDK)",
        "per_unit": f"xpstream per unit (evaluate{', C hashes' if native else ''})",
        "bulk": "xpstream bulk (evaluate_many)",
        "per_unit_pure": "xpstream per unit, pure-Python hashes",
    }
    rows: list[dict[str, Any]] = []
    for name in names:
        rows.append(
            {
                "engine": labels[name],
                "seconds": seconds[name],
                "evaluations_per_s": evaluations / seconds[name],
                "units_per_s": len(units) / seconds[name],
                "x_sdk": seconds["sdk"] / seconds[name],
                "x_sdk_median_chunk": statistics.median(chunk_ratios[name]),
            }
        )
    report = {
        "benchmark": "assignment_in_process",
        "units": len(units),
        "features": keys,
        "evaluations": evaluations,
        "agreement": "every unit's value, source and variation identical to the GrowthBook SDK",
        "python": platform.python_version(),
        "chunk_units": chunk,
        "native_hashing": native,
        "load_average": os.getloadavg(),
        "results": rows,
        "budget_x_sdk": 10,
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(report) + "\n")
        return 0
    print(
        f"{len(units):,} units × {len(keys)} features = {evaluations:,} evaluations; all agree with the SDK"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"native (C) hashing: {'built' if native else 'not built: pure Python'}; load average {load}")
    print(
        f"{'engine':<36} {'units/s':>12} {'evals/s':>12} {'µs/eval':>9} {'× SDK':>7} "
        f"{'× SDK (median of chunks)':>25}"
    )
    for row in rows:
        print(
            f"{row['engine']:<36} {row['units_per_s']:>12,.0f} {row['evaluations_per_s']:>12,.0f} "
            f"{1e6 / row['evaluations_per_s']:>9.2f} {row['x_sdk']:>7.1f} {row['x_sdk_median_chunk']:>25.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
