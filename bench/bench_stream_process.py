"""The whole stream process: ``xp stream run --until-idle 5`` from start to exit, next to raw consumption.

Issue #22's workload, scaled by ``--units``: per unit 2 exposures (experiments ``bench-a`` and ``bench-b``)
and ``--events-per-unit`` events (default 20), every event attributed to both experiments. With
``--units 100000`` that is 2.2 M records (200 k exposures, 2 M events, 4 M attribution rows).

A run may write fewer attribution rows than the workload has (``attributed`` < ``workload_rows``): events
read before their unit's exposures are held, and past ``XP_STREAM_MAX_HELD_EVENTS`` the oldest are released
unattributed, so how many rows a run writes depends on the order librdkafka hands over the two topics.
Each run reports ``attributed_share``; compare runs with the same share (docs/benchmarks.md).

Per round, interleaved in the same run over the same topics: raw confluent-kafka consumption (a fresh
group, every record's value touched; librdkafka defaults and tuned fetch settings), then each source tree
given with ``--tree NAME=PATH`` (a checkout of this repository, e.g. the baseline commit from
``git worktree add``/``git archive``) runs ``xp stream run --until-idle 5 --format json`` as its own
process with a fresh group and a fresh chDB home; each round starts one tree later than the one
before (``order``), so that no tree always runs right after the raw consumers. Figures per run: wall
seconds of the whole process (interpreter start, imports, state restore, group join, the 5 idle seconds
included), records/s over the wall time minus the idle wait (``until_idle``), the process's own CPU
seconds and peak RSS (``os.wait4``), and the worker's own report (``seconds``, stages).

Starts its own broker in a temporary home (or uses ``--bootstrap``). Run::

    .venv/bin/python bench/bench_stream_process.py --units 10000 --rounds 3 \\
        --tree before=/tmp/xp-base --tree after=.

A tree may carry settings for its runs: ``--tree overlap=.,XP_STREAM_OVERLAP_LOAD=true``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._broker import bench_broker, bench_topics
from bench._workload import unit_events, unit_exposure
from schemas import Exposure, MetricEvent, RecordCodec
from xpcore.config import KafkaSettings
from xpcore.kafka import EVENTS, EXPOSURES

EXPERIMENTS = ("bench-a", "bench-b")
REGISTRY = {
    "experiments": {
        key: {"variations": [{"id": 0, "name": "Control"}, {"id": 1, "name": "Treat"}]} for key in EXPERIMENTS
    }
}
UNTIL_IDLE = 5.0
TUNED_FETCH = {
    "fetch.max.bytes": 50 * 1024 * 1024,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "queued.max.messages.kbytes": 256 * 1024,
    "fetch.wait.max.ms": 100,
}


def produce(settings: KafkaSettings, units: int, events_per_unit: int, seed: int) -> int:
    from xpcore.kafka.clients import make_producer

    rng = random.Random(seed)
    exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    producer = make_producer(
        settings, **{"queue.buffering.max.messages": 1_000_000, "linger.ms": 50, "batch.size": 1_000_000}
    )
    base = datetime.now(UTC) - timedelta(minutes=30)
    exposures_topic, events_topic = settings.topic(EXPOSURES), settings.topic(EVENTS)
    sent = 0
    for u in range(units):
        unit = f"u{seed}-{u}"
        key = unit.encode()
        at = base + timedelta(seconds=rng.randrange(600))
        for experiment in EXPERIMENTS:
            exposure = unit_exposure(unit, u, at, experiment, f"x-{experiment}-{unit}")
            producer.produce(exposures_topic, key=key, value=exposure_codec.encode(exposure))
        for event in unit_events(unit, events_per_unit, at, rng):
            producer.produce(events_topic, key=key, value=event_codec.encode(event))
        sent += len(EXPERIMENTS) + events_per_unit
        producer.poll(0)
    producer.flush(300)
    return sent


def raw_consume(settings: KafkaSettings, expected: int, overrides: dict[str, Any]) -> dict[str, float]:
    """A fresh group reads every record; wall time from the consumer's creation (group join included)."""
    from xpcore.kafka.clients import make_consumer

    began = time.perf_counter()
    consumer = make_consumer(settings, f"bench-raw-{uuid.uuid4().hex[:6]}", **overrides)
    consumer.subscribe([settings.topic(EXPOSURES), settings.topic(EVENTS)])
    count = 0
    first: float | None = None
    while count < expected:
        messages = consumer.consume(10_000, timeout=1.0)
        if messages and first is None:
            first = time.perf_counter()
        for message in messages:
            if message.error() is None:
                message.value()
                count += 1
    ended = time.perf_counter()
    consumer.close()
    return {
        "records_per_s": round(count / (ended - began)),
        "records_per_s_from_first_record": round(count / (ended - (first or began))),
    }


def run_tree(tree: Path, env: dict[str, str], profile: Path | None = None) -> dict[str, Any]:
    """``xp stream run --until-idle 5`` of the source tree ``tree`` as a process of its own (under
    cProfile, written to ``profile``, when given)."""
    command = [
        sys.executable,
        *(["-m", "cProfile", "-o", str(profile)] if profile else []),
        "-m",
        "xpstream.cli",
    ]
    command += ["stream", "run", "--until-idle", str(UNTIL_IDLE), "--format", "json"]
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(  # our own interpreter and arguments
            command, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, stdout=out, stderr=err, text=True
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU and peak RSS
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    if child.returncode != 0:
        raise RuntimeError(f"xp stream run failed in {tree}: {stderr[-2000:]}")
    report = json.loads(stdout)
    busy = wall - UNTIL_IDLE
    return {
        "wall_seconds": round(wall, 2),
        "records_per_s_whole_process": round(report["consumed"] / busy),
        "cpu_seconds": round(cpu, 2),
        "cpu_us_per_record": round(cpu / max(report["consumed"], 1) * 1e6, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux: kilobytes
        "worker_seconds": round(report["seconds"], 2),
        "consumed": report["consumed"],
        "attributed": report["attributed"],
        "held_released_early": report.get("held_released_early"),  # absent in trees before decision 0107
        "dead_letters": report["dead_letters"],
        "stage_seconds": report["stage_seconds"],
        "restored": report.get("restored"),
    }


def _tree(item: str) -> tuple[str, Path, dict[str, str]]:
    """``NAME=PATH[,KEY=VALUE...]`` → (name, resolved path, extra environment of its runs)."""
    name, rest = item.split("=", 1)
    path, *settings = rest.split(",")
    return name, Path(path).resolve(), dict(setting.split("=", 1) for setting in settings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--events-per-unit", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        help="NAME=PATH[,XP_SETTING=VALUE...]: a source tree (repeatable), optionally with settings",
    )
    parser.add_argument("--profile", type=Path, default=None, help="Write a cProfile of each xp run here.")
    parser.add_argument("--bootstrap", default=None, help="Use this running broker instead of starting one.")
    args = parser.parse_args()
    trees = [_tree(item) for item in args.tree]
    trees = trees or [("this", Path(__file__).resolve().parents[1], {})]
    with (
        tempfile.TemporaryDirectory(prefix="xp-bench-process-") as tmp,
        bench_broker(Path(tmp), args.bootstrap) as bootstrap,
    ):
        home = Path(tmp)
        kafka = bench_topics(bootstrap)
        prefix = kafka.topic_prefix
        began = time.perf_counter()
        total = produce(kafka, args.units, args.events_per_unit, seed=7)
        print(
            json.dumps({"records": total, "produce_seconds": round(time.perf_counter() - began, 1)}),
            flush=True,
        )
        registry = home / "registry.json"
        registry.write_text(json.dumps(REGISTRY))
        for round_number in range(args.rounds):
            workload_rows = args.units * args.events_per_unit * len(EXPERIMENTS)
            row: dict[str, Any] = {"round": round_number + 1, "records": total}
            row["workload_rows"] = workload_rows
            row["raw_default"] = raw_consume(kafka, total, {})
            row["raw_tuned_fetch"] = raw_consume(kafka, total, TUNED_FETCH)
            # Each round starts one tree later: no tree always runs right after the raw consumers.
            shift = round_number % len(trees)
            row["order"] = [name for name, _, _ in trees[shift:] + trees[:shift]]
            for name, tree, extra in trees[shift:] + trees[:shift]:
                env = {
                    **os.environ,
                    **extra,
                    "XP_HOME": str(home / f"xp-{name}-{round_number}"),
                    "XP_KAFKA_BOOTSTRAP": bootstrap,
                    "XP_TOPIC_PREFIX": prefix,
                    "XP_STREAM_REGISTRY_FILE": str(registry),
                    "XP_STREAM_GROUP_ID": f"xp-bench-{name}-{uuid.uuid4().hex[:6]}",
                    "XP_LOG_LEVEL": "WARNING",
                }
                profile = args.profile / f"{name}-{round_number + 1}.prof" if args.profile else None
                row[name] = run_tree(tree, env, profile)
                row[name]["attributed_share"] = round(row[name]["attributed"] / max(workload_rows, 1), 4)
            row["load_average"] = [round(v, 2) for v in os.getloadavg()]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
