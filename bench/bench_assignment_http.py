"""Assignment over HTTP: `xp assign serve` under a real load generator, next to a baseline, same run.

Budget (DESIGN.md): p99 ≤ 5 ms at 2,000 requests/s on the 2-core machine.

Load generator: wrk (https://github.com/wg/wrk) with a Lua script that POSTs
``/v1/assign`` bodies for distinct units (the three-feature payload of bench_assignment.py; ids cycle
over ``--units``) and paces each of its 64 connections with wrk's ``delay()`` hook so the offered rate
is about ``--rate`` requests/s. By default (``--arrivals poisson``) each connection waits an
exponentially distributed time between requests, so arrivals are independent, as from real clients;
``--arrivals lockstep`` waits a fixed time, so the 64 connections stay in phase and fire together in
bursts of 64 (what this bench measured before 2026-11-26: the last request of a burst waits for the 63
before it, which put the trivial baseline's p99 at ~7 ms; decision 0030). wrk is closed-loop: a
stalled server sees fewer requests, so the achieved rate is printed next to the latencies.
This script installs nothing: without wrk it skips with one line (``make wrk`` or
``apt-get install -y wrk`` gets it; ``make bench`` does it first).

Servers, each on its own port and process, started side by side and driven in turn by wrk for
``--rounds`` rounds (rotating the order; ``--duration`` seconds per server in all), so that load from
other processes on a shared machine weighs on all of them alike; latency percentiles are the median
over rounds, with the worst round's p99 and the p99 of every request of every round pooled (from
wrk's latency histograms; the budget is judged on that one):

- ``baseline``: a trivial Starlette endpoint on the same uvicorn set-up (reads the body, returns a
  constant JSON): the floor of the HTTP stack on this machine;
- ``service``: ``xp assign serve --features PAYLOAD`` evaluating every feature per request, with
  exposures produced to a Kafka broker (``--bootstrap HOST:PORT``, else a fresh local broker started
  in a temporary home on the same machine and stopped after); ``--no-broker`` measures the outage
  path (librdkafka retries, then the spool); ``--no-exposures`` measures assignment alone.

It also times the engine in-process (``evaluate_all`` on the same units) for reference. Run::

    .venv/bin/python bench/bench_assignment_http.py [--rate 2000] [--duration 20] [--format json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _broker import bench_broker
from bench_assignment import PAYLOAD, make_units

REPO = Path(__file__).resolve().parents[1]
CONNECTIONS = 64
BUDGET_P99_MS = 5.0

LUA = r"""
local units = {UNITS}
local counter = {OFFSET}
local pause = {PAUSE}
local poisson = {POISSON}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local i = counter % units
  local body = string.format(
    '{"attributes":{"id":"user-%07d","country":"%s","app_version":"%d.%d.%d","plan":"pro"}}',
    i, ({"US","CA","FR","GB","DE"})[i % 5 + 1], 1 + i % 3, i % 7, i % 11)
  return wrk.format(nil, "/v1/assign", nil, body)
end
init = function(args) math.randomseed({SEED}) end
delay = function()
  if poisson then
    -- exponential think time with mean `pause` ms (wrk truncates to whole ms: +0.5 keeps the mean)
    return -math.log(1 - math.random()) * pause + 0.5
  end
  return pause
end
done = function(summary, latency, requests)
  io.write(string.format('XPRESULT {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  -- the whole latency histogram (distinct µs values and their counts), so that rounds pool exactly
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format('%d:%d', value, count)
  end
  io.write('XPHIST ' .. table.concat(parts, ',') .. '\n')
end
"""

BASELINE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def assign(request):
    await request.body()
    return Response(b'{"payload_version":1,"features":{}}', media_type="application/json")

async def healthz(request):
    return Response(b"ok")

app = Starlette(routes=[Route("/v1/assign", assign, methods=["POST"]), Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"error: the server at {url} did not answer within {timeout:g}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report server CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    port: int,
    rate: int,
    duration: int,
    units: int,
    workdir: Path,
    offset: int = 0,
    arrivals: str = "poisson",
) -> dict[str, Any]:
    # each connection waits `pause` (fixed, or exponential with that mean) before each request;
    # ~1 ms is subtracted for the response time
    pause_ms = max(0, round(CONNECTIONS * 1000 / rate) - 1)
    script = workdir / f"assign-{port}-{offset}.lua"
    lua = LUA.replace("{UNITS}", str(units)).replace("{PAUSE}", str(pause_ms))
    lua = lua.replace("{POISSON}", "true" if arrivals == "poisson" else "false")
    lua = lua.replace("{SEED}", str(1 + offset % 1_000_003))
    script.write_text(lua.replace("{OFFSET}", str(offset)))
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s", str(script)]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=duration + 60
    )
    line = next((ln for ln in output.stdout.splitlines() if ln.startswith("XPRESULT ")), None)
    if line is None:
        raise SystemExit(f"error: wrk failed: {output.stderr.strip() or output.stdout.strip()}")
    result: dict[str, Any] = json.loads(line.removeprefix("XPRESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    hist = next((ln for ln in output.stdout.splitlines() if ln.startswith("XPHIST ")), "XPHIST ")
    result["histogram"] = [
        (int(value), int(count))
        for value, count in (pair.split(":") for pair in hist.removeprefix("XPHIST ").split(",") if pair)
    ]
    return result


def pooled_percentile(runs: list[dict[str, Any]], q: float) -> float:
    """The ``q``-th percentile (µs) of every request of ``runs`` together, from their histograms."""
    merged: dict[int, int] = {}
    for run in runs:
        for value, count in run["histogram"]:
            merged[value] = merged.get(value, 0) + count
    total = sum(merged.values())
    if not total:
        return float("nan")
    rank = q / 100 * total
    seen = 0
    for value in sorted(merged):
        seen += merged[value]
        if seen >= rank:
            return float(value)
    return float(max(merged))


PERCENTILES = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us")


def measure_interleaved(
    servers: list[tuple[str, list[str], int, str, dict[str, str]]],
    env: dict[str, str],
    args: argparse.Namespace,
    workdir: Path,
) -> list[dict[str, Any]]:
    """Start every server, then drive them in turn for ``args.rounds`` rounds (rotating the order),
    so that load from other processes weighs on all of them alike. Per server: total requests/s,
    the median over rounds of each latency percentile (and the worst round's p99), CPU per request.
    Each wrk run starts at other unit ids, so the service's dedup window never hides exposures."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = []
    try:
        for name, command, _, _, extra_env in servers:
            logs.append((workdir / f"{name}.log").open("wb"))  # a file: a full pipe stalls a server
            processes[name] = subprocess.Popen(
                command, env={**env, **extra_env}, cwd=REPO, stdout=subprocess.DEVNULL, stderr=logs[-1]
            )
        seconds = max(1, round(args.duration / args.rounds))
        per_run = int(args.rate * seconds * 1.2)
        for number, (_, _, port, health, _) in enumerate(servers):
            wait_http(f"http://127.0.0.1:{port}{health}")
            warm_offset = args.units - 4 * args.rate * (number + 1)
            run_wrk(port, args.rate, 3, args.units, workdir, warm_offset, args.arrivals)
        rounds: dict[str, list[dict[str, Any]]] = {server[0]: [] for server in servers}
        cpu: dict[str, float] = dict.fromkeys(rounds, 0.0)
        for number in range(args.rounds):
            shift = number % len(servers)
            for name, _, port, _, _ in servers[shift:] + servers[:shift]:
                before = cpu_seconds(processes[name].pid)
                run = run_wrk(port, args.rate, seconds, args.units, workdir, number * per_run, args.arrivals)
                rounds[name].append(run)
                cpu[name] += cpu_seconds(processes[name].pid) - before
        results = []
        for name, _, port, _, _ in servers:
            runs = rounds[name]
            requests = sum(r["requests"] for r in runs)
            result: dict[str, Any] = {
                "name": name,
                "requests": requests,
                "rps": requests / (sum(r["duration_us"] for r in runs) / 1e6),
                "errors": sum(r["errors"] for r in runs),
                "status_errors": sum(r["status_errors"] for r in runs),
                "rounds": len(runs),
                "p99_us_worst_round": max(r["p99_us"] for r in runs),
                "server_cpu_us_per_request": cpu[name] / max(requests, 1) * 1e6,
            }
            for key in PERCENTILES:
                result[key] = statistics.median(r[key] for r in runs)
            # every request of every round together (exact, from wrk's histograms)
            result["pooled_p99_us"] = pooled_percentile(runs, 99.0)
            result["pooled_p999_us"] = pooled_percentile(runs, 99.9)
            if name == "service":
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    result["sink"] = json.loads(response.read())["sink"]
            results.append(result)
        return results
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def in_process(units: int) -> float:
    from assignment import compile_payload

    payload = compile_payload(PAYLOAD)
    sample = make_units(min(units, 20000))
    began = time.perf_counter()
    for unit in sample:
        payload.evaluate_all(unit)
    return (time.perf_counter() - began) / len(sample) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=2000, help="offered requests/s (default 2000)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run (default 20)")
    parser.add_argument("--units", type=int, default=100_000, help="distinct unit ids cycled through")
    parser.add_argument(
        "--rounds", type=int, default=4, help="runs per server, interleaved (--duration is split among them)"
    )
    parser.add_argument(
        "--arrivals",
        choices=["poisson", "lockstep"],
        default="poisson",
        help="poisson (default): each connection waits an exponential time between requests, so arrivals "
        "are independent like real clients'; lockstep: a fixed pause, so all connections fire together in "
        "bursts of 64 (what this bench measured before 2026-11-26)",
    )
    parser.add_argument("--exposures", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--bootstrap", help="Kafka bootstrap for exposures (default: start a local broker)")
    parser.add_argument(
        "--no-broker", action="store_true", help="no broker at all: exposures go the outage path (spool)"
    )
    parser.add_argument(
        "--also-without-exposures",
        action="store_true",
        help="a third run: the service with --no-exposures (what exposures cost, same run)",
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: the load generator wrk is not installed (make wrk, or apt-get install -y wrk)")
        sys.exit(0)
    python = sys.executable
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xp-bench-http-")))
        if args.no_broker:
            bootstrap = "127.0.0.1:9"  # nothing listens: the outage path
        else:  # also for --no-exposures: the same machine load (a broker on the cores) in every run
            bootstrap = stack.enter_context(bench_broker(workdir, args.bootstrap))
        payload_file = workdir / "payload.json"
        payload_file.write_text(json.dumps(PAYLOAD))
        env = {
            **os.environ,
            "XP_HOME": str(workdir / "xp-home"),
            "XP_LOG_LEVEL": "WARNING",
            "XP_KAFKA_BOOTSTRAP": bootstrap,
        }
        env.setdefault("XP_EXPOSURE_DEDUP_SECONDS", "1800")
        baseline_file = workdir / "baseline.py"
        baseline_file.write_text(BASELINE_APP)
        port = free_port()
        servers: list[tuple[str, list[str], int, str, dict[str, str]]] = [
            ("baseline", [python, str(baseline_file), str(port)], port, "/healthz", {})
        ]

        def serve(exposures: bool) -> list[str]:
            return [
                *(python, "-m", "xpstream.cli", "assign", "serve", "--features", str(payload_file)),
                *("--port", str(port), "--exposures" if exposures else "--no-exposures"),
            ]

        port = free_port()
        servers.append(("service", serve(args.exposures), port, "/healthz", {}))
        if args.also_without_exposures and args.exposures:
            port = free_port()  # one service per spool directory: this one gets its own
            spool = {"XP_SPOOL_DIR": str(workdir / "spool-no-expo")}
            servers.append(("no-expo", serve(False), port, "/healthz", spool))
        rows = measure_interleaved(servers, env, args, workdir)
        service = rows[1]
    engine_us = in_process(args.units)
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after",
        "load_generator": f"wrk -t1 -c{CONNECTIONS}, {args.arrivals} arrivals at ~{args.rate} req/s, "
        f"{args.duration}s per "
        f"server in {args.rounds} interleaved rounds (percentiles: median over rounds; 'all p99': every "
        "request of every round pooled)",
        "kafka": "none (outage path: spool)" if args.no_broker or bootstrap.endswith(":9") else bootstrap,
        "engine_evaluate_all_us": round(engine_us, 1),
        "budget_p99_ms": BUDGET_P99_MS,
        "runs": rows,
        "service_meets_budget": service["pooled_p99_us"] / 1000 <= BUDGET_P99_MS
        and service["rps"] >= 0.95 * args.rate,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']}; {report['load_generator']}")
    print(
        f"{'run':<10} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}"
        f" {'worst p99':>10} {'all p99':>8} {'errors':>7} {'server CPU µs/req':>18}"
    )
    for row in rows:
        print(
            f"{row['name']:<10} {row['rps']:>8.0f} {row['p50_us'] / 1000:>8.2f} {row['p90_us'] / 1000:>8.2f} "
            f"{row['p99_us'] / 1000:>8.2f} {row['p999_us'] / 1000:>9.2f} {row['max_us'] / 1000:>8.2f} "
            f"{row['p99_us_worst_round'] / 1000:>10.2f} {row['pooled_p99_us'] / 1000:>8.2f} "
            f"{row['errors'] + row['status_errors']:>7} "
            f"{row['server_cpu_us_per_request']:>18.0f}"
        )
    sink = service.get("sink", {})
    print(f"engine in-process: evaluate_all {engine_us:.1f} µs per request (3 features)")
    print(f"exposures: {'on' if args.exposures else 'off'}; kafka {report['kafka']}; sink {json.dumps(sink)}")
    print(
        f"budget p99 ≤ {BUDGET_P99_MS} ms at {args.rate} req/s (every request pooled): "
        + ("MET" if report["service_meets_budget"] else "NOT MET")
    )


if __name__ == "__main__":
    main()
