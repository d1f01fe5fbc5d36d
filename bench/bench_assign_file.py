"""Bulk assignment, whole process: `xp assign eval --attributes-file` vs the GrowthBook Python SDK.

Budget (issue #22): ≥ 10× the GrowthBook Python SDK for the whole process on 1 M units, same
feature, same file, same run. Both sides are a fresh process reading the same JSONL file of units
(``bench_assignment.make_units``) and writing one JSON object per unit to a file:

- ``growthbook``: ``python bench/bench_assign_file.py --sdk-child …``: one ``GrowthBook`` instance,
  then per line ``json.loads``, ``set_attributes``, ``eval_feature`` and ``json.dumps`` of the
  result's fields (the same fields xpstream prints);
- ``xp``: ``xp assign eval --features payload.json --key checkout --attributes-file units.jsonl
  --format json``.

Rounds alternate which side runs first. Wall time and CPU time (user + sys of the child, from
``wait4``) are reported; the ratio of CPU times is the robust one on a shared machine. Every unit's
value, source, variation and bucket are checked to agree between both outputs (every round).

    .venv/bin/python bench/bench_assign_file.py --units 1000000 --rounds 3
    .venv/bin/python bench/bench_assign_file.py --units 100000,300000,1000000 --rounds 2   # a curve
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_assignment import PAYLOAD, make_units  # noqa: E402

KEY = "checkout"


def sdk_child(payload_path: str, key: str, units_path: str) -> None:
    """The SDK's side: one GrowthBook instance; per line decode, evaluate, encode."""
    import logging

    from growthbook import GrowthBook

    logging.getLogger("growthbook").setLevel(logging.ERROR)
    with open(payload_path, encoding="utf-8") as stream:
        payload = json.load(stream)
    gb = GrowthBook(features=payload["features"])
    out = sys.stdout
    with open(units_path, encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            gb.set_attributes(json.loads(line))
            result = gb.eval_feature(key)
            experiment = result.experimentResult if result.source == "experiment" else None
            row = {
                "value": result.value,
                "source": result.source,
                "rule_id": result.ruleId,
                "experiment_key": result.experiment.key
                if experiment is not None and result.experiment
                else None,
                "in_experiment": experiment is not None and experiment.inExperiment,
                "variation_id": experiment.variationId if experiment is not None else None,
                "hash_used": experiment is not None and experiment.hashUsed,
                "hash_attribute": experiment.hashAttribute if experiment is not None else None,
                "hash_value": experiment.hashValue if experiment is not None else None,
                "bucket": experiment.bucket if experiment is not None else None,
                "variation_key": experiment.key if experiment is not None else None,
                "on": result.on,
                "off": result.off,
            }
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def run(command: list[str], output: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of one child process writing to ``output``."""
    with output.open("wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise SystemExit(
            f"{command[:3]} failed ({process.returncode}): {process.stderr.read().decode()[-800:]}"
        )
    return wall, usage.ru_utime + usage.ru_stime


def check_agreement(sdk_out: Path, xp_out: Path, units: int) -> None:
    fields = ("value", "source", "variation_id", "bucket", "hash_value", "in_experiment")
    count = 0
    with sdk_out.open(encoding="utf-8") as sdk, xp_out.open(encoding="utf-8") as ours:
        for number, (want_line, got_line) in enumerate(zip(sdk, ours, strict=True), start=1):
            want, got = json.loads(want_line), json.loads(got_line)
            if any(want[f] != got[f] for f in fields):
                raise SystemExit(f"line {number}: xp {got} disagrees with the SDK {want}")
            count += 1
    if count != units:
        raise SystemExit(f"{count} output lines for {units} units")


def measure(units: int, rounds: int, work: Path) -> dict[str, Any]:
    units_path = work / f"units-{units}.jsonl"
    with units_path.open("w", encoding="utf-8") as stream:
        for start in range(0, units, 100_000):
            batch = make_units(min(units, start + 100_000) - start, start=start)
            stream.writelines(json.dumps(unit) + "\n" for unit in batch)
    payload_path = work / "payload.json"
    payload_path.write_text(json.dumps(PAYLOAD), encoding="utf-8")
    xp = [str(ROOT / ".venv" / "bin" / "xp")]
    commands = {
        "sdk": [sys.executable, __file__, "--sdk-child", str(payload_path), KEY, str(units_path)],
        "xp": [
            *xp,
            "assign",
            "eval",
            "--features",
            str(payload_path),
            "--key",
            KEY,
            "--attributes-file",
            str(units_path),
            "--format",
            "json",
        ],
    }
    times: dict[str, list[tuple[float, float]]] = {"sdk": [], "xp": []}
    loads = []
    for number in range(rounds):
        order = ("sdk", "xp") if number % 2 == 0 else ("xp", "sdk")
        for name in order:
            times[name].append(run(commands[name], work / f"{name}.out"))
        loads.append(os.getloadavg()[0])
        check_agreement(work / "sdk.out", work / "xp.out", units)
    units_path.unlink()
    summary: dict[str, Any] = {"units": units, "rounds": rounds, "load_1min": loads}
    for name, pairs in times.items():
        summary[name] = {
            "wall_s": [round(wall, 2) for wall, _ in pairs],
            "cpu_s": [round(cpu, 2) for _, cpu in pairs],
        }
    summary["x_sdk_wall_median"] = statistics.median(
        s[0] / x[0] for s, x in zip(times["sdk"], times["xp"], strict=False)
    )
    summary["x_sdk_cpu_median"] = statistics.median(
        s[1] / x[1] for s, x in zip(times["sdk"], times["xp"], strict=False)
    )
    summary["xp_units_per_cpu_s"] = units / statistics.median(cpu for _, cpu in times["xp"])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", default="1000000", help="units per file; a comma list gives a curve")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--sdk-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sdk_child:
        sdk_child(*args.sdk_child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-assign-file-") as tmp:
        results = [measure(int(count), args.rounds, Path(tmp)) for count in args.units.split(",")]
    if args.format == "json":
        sys.stdout.write(json.dumps({"benchmark": "assign_eval_file", "results": results}) + "\n")
        return 0
    print("xp assign eval --attributes-file vs the GrowthBook SDK, whole process; outputs agree every round")
    print(f"{'units':>9} {'SDK wall s':>16} {'xp wall s':>16} {'SDK CPU s':>16} {'xp CPU s':>16} "
          f"{'× wall':>7} {'× CPU':>6} {'load':>12}")  # fmt: skip
    for r in results:
        print(
            f"{r['units']:>9,} {'/'.join(map(str, r['sdk']['wall_s'])):>16} "
            f"{'/'.join(map(str, r['xp']['wall_s'])):>16} {'/'.join(map(str, r['sdk']['cpu_s'])):>16} "
            f"{'/'.join(map(str, r['xp']['cpu_s'])):>16} {r['x_sdk_wall_median']:>7.1f} "
            f"{r['x_sdk_cpu_median']:>6.1f} {'/'.join(f'{x:.1f}' for x in r['load_1min']):>12}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
