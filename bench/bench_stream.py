"""Stream ingest: the worker (validate + dedup + enrich + attribute + load into chDB) vs raw consumption.

Budget (DESIGN.md): ≥ 50,000 events/s per worker process. Same run, same topics, same records:

- ``raw confluent-kafka``: a fresh consumer group reads every record of both topics with
  ``consume(5000)`` and touches each value (the physical limit of the client here);
- ``xp stream worker``: ``run_worker`` in this process, from a fresh group and a fresh chDB store,
  until drained; throughput = records / ``active_seconds`` (first batch received → last commit), with
  the time per stage (consume, kernel, inserts, commit) so it is clear where the time goes.

Starts its own broker in a temporary XP_HOME (or uses ``--bootstrap``). Run::

    .venv/bin/python bench/bench_stream.py [--units 20000] [--events-per-unit 4] [--repeat 3] [--format json]
    .venv/bin/python bench/bench_stream.py --kernel-only --repeat 5   # the kernel alone, CPU seconds
    .venv/bin/python bench/bench_stream.py --faust --repeat 3   # + `--runner faust` after each Kafka run
    .venv/bin/python bench/bench_stream.py --kernel-only --units 10000 --events-per-unit 20 --experiments 2 \
        --batch-size 5000 --repeat 5   # issue #22's shape, the columnar kernel vs the per-record walk

With ``--repeat N`` the same records are read N times (a fresh raw group, then a fresh worker group and
chDB store each time) and the middle run is printed in full, with every
run's rate; ``worker_cpu_seconds`` (CPU of this process while the worker ran) moves less with machine load
than the rates do.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._broker import bench_broker, bench_topics
from bench._workload import bench_kernel, unit_events, unit_exposure
from schemas import Exposure, MetricEvent, RecordCodec
from xpcore.config import KafkaSettings, StreamSettings
from xpcore.kafka import EVENTS, EXPOSURES

REGISTRY = {
    "experiments": {"bench": {"variations": [{"id": 0, "name": "Control"}, {"id": 1, "name": "Treat"}]}}
}


def produce(settings: KafkaSettings, units: int, events_per_unit: int, seed: int) -> int:
    from xpcore.kafka.clients import make_producer

    rng = random.Random(seed)
    exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
    event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    producer = make_producer(settings, **{"queue.buffering.max.messages": 1_000_000})
    base = datetime.now(UTC) - timedelta(minutes=30)
    sent = 0
    for u in range(units):
        unit = f"u{seed}-{u}"
        at = base + timedelta(seconds=rng.randrange(600))
        exposure = unit_exposure(unit, u, at)
        producer.produce(settings.topic(EXPOSURES), key=unit.encode(), value=exposure_codec.encode(exposure))
        for event in unit_events(unit, events_per_unit, at, rng):
            producer.produce(settings.topic(EVENTS), key=unit.encode(), value=event_codec.encode(event))
        sent += 1 + events_per_unit
        producer.poll(0)
    producer.flush(60)
    return sent


def raw_consume(settings: KafkaSettings, expected: int) -> float:
    from xpcore.kafka.clients import make_consumer

    consumer = make_consumer(settings, f"bench-raw-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic(EXPOSURES), settings.topic(EVENTS)])
    count = 0
    started: float | None = None
    total_bytes = 0
    while count < expected:
        messages = consumer.consume(5000, timeout=1.0)
        if messages and started is None:
            started = time.perf_counter()
        for message in messages:
            if message.error() is None:
                total_bytes += len(message.value())
                count += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / elapsed


def kernel_only(
    units: int, events_per_unit: int, batch_size: int, repeat: int, experiments: int = 1
) -> dict[str, Any]:
    """The kernel alone (``StreamProcessor.process`` + ``commit``), no Kafka, no warehouse: CPU seconds per
    run over bench-shaped records (each unit exposed to ``experiments`` experiments), next to a bare
    ``msgspec`` decode of the same values (the floor) and, alternating run by run, the same kernel with
    the per-record attribution walk (``AttributionState(columnar=False)``, the reference of decision
    0076). The garbage collector is paced by batches as in the worker (``pipelines.gc_pacing``)."""
    import msgspec

    from pipelines.attribution import AttributionState
    from pipelines.gc_pacing import PacedCollector
    from pipelines.kernel import RawRecord

    rng = random.Random(7)
    base = datetime(2026, 11, 26, tzinfo=UTC)
    kafka_ms = round(base.timestamp() * 1000) + 1_800_000
    xs: list[RawRecord] = []
    es: list[RawRecord] = []
    keys = ["bench"] if experiments == 1 else [f"bench-{n}" for n in range(experiments)]
    for u in range(units):
        unit = f"u7-{u}"
        at = base + timedelta(seconds=rng.randrange(600))
        for key in keys:
            exposure = unit_exposure(unit, u, at, key, f"x-{key}-{unit}")
            value = msgspec.json.encode(exposure)
            xs.append(RawRecord("x", u % 3, len(xs), unit.encode(), value, kafka_ms))
        for event in unit_events(unit, events_per_unit, at, rng):
            es.append(RawRecord("e", u % 3, len(es), unit.encode(), msgspec.json.encode(event), kafka_ms))
    share = batch_size * len(keys) // (len(keys) + events_per_unit)
    raws: list[RawRecord] = []
    while xs or es:  # batches as consumed: runs of each topic
        raws += xs[:share] + es[: batch_size - share]
        del xs[:share], es[: batch_size - share]
    now = base + timedelta(minutes=31)
    kernel: list[float] = []
    reference: list[float] = []
    floor: list[float] = []
    decoders: dict[str, Any] = {"x": msgspec.json.Decoder(Exposure), "e": msgspec.json.Decoder(MetricEvent)}
    for run in range(2 * (repeat + 1)):  # the first two runs warm up (imports, first calls); not counted
        columnar = run % 2 == 0
        processor = bench_kernel(
            keys,
            AttributionState(
                default_window=timedelta(days=14), hold=timedelta(seconds=300), columnar=columnar
            ),
        )
        began = time.process_time()
        with PacedCollector() as collector:  # the collector paced by batches, as in the worker
            for start in range(0, len(raws), batch_size):
                processor.remember_ids(processor.process(raws[start : start + batch_size], now))
                collector.after_batch()
        (kernel if columnar else reference).append(time.process_time() - began)
        if not columnar:
            continue
        began = time.process_time()
        for raw in raws:
            decoders[raw.topic].decode(raw.value)
        floor.append(time.process_time() - began)
    kernel, reference, floor = kernel[1:], reference[1:], floor[1:]
    return {
        "records": len(raws),
        "kernel_cpu_seconds_all_runs": [round(v, 3) for v in kernel],
        "kernel_cpu_seconds_median": round(sorted(kernel)[len(kernel) // 2], 3),
        "reference_walk_cpu_seconds_all_runs": [round(v, 3) for v in reference],
        "reference_walk_cpu_seconds_median": round(sorted(reference)[len(reference) // 2], 3),
        "msgspec_decode_cpu_seconds_median": round(sorted(floor)[len(floor) // 2], 3),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--events-per-unit", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Worker runs over the same records, each after its own raw consume.",
    )
    parser.add_argument(
        "--faust",
        action="store_true",
        help="Also run `--runner faust` in each repeat, right after the Kafka runner (interleaved).",
    )
    parser.add_argument(
        "--experiments", type=int, default=1, help="--kernel-only: experiments each unit is exposed to."
    )
    parser.add_argument("--bootstrap", default=None, help="Use this running broker instead of starting one.")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument(
        "--kernel-only",
        action="store_true",
        help="Time the kernel alone on bench-shaped records (no broker, no warehouse); see kernel_only().",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.kernel_only:
        figures = kernel_only(
            args.units, args.events_per_unit, args.batch_size, max(args.repeat, 3), args.experiments
        )
        print(
            json.dumps(figures)
            if args.format == "json"
            else "\n".join(f"{k:36} {v}" for k, v in figures.items())
        )
        return

    from pipelines.worker import run_worker

    with (
        tempfile.TemporaryDirectory(prefix="xp-bench-stream-") as tmp,
        bench_broker(Path(tmp), args.bootstrap) as bootstrap,
    ):
        home = Path(tmp)
        kafka = bench_topics(bootstrap)
        prefix = kafka.topic_prefix
        total = produce(kafka, args.units, args.events_per_unit, seed=7)
        registry = home / "registry.json"
        registry.write_text(json.dumps(REGISTRY))
        runs: list[dict[str, Any]] = []
        for repeat in range(args.repeat):
            raw_rate = raw_consume(kafka, total)
            for runner in ("kafka", "faust") if args.faust else ("kafka",):
                settings = StreamSettings(
                    home=home / f"xp-home-{repeat}-{runner}",
                    kafka_bootstrap=bootstrap,
                    topic_prefix=prefix,
                    stream_registry_file=registry,
                    stream_batch_size=args.batch_size,
                    stream_group_id=f"xp-bench-worker-{uuid.uuid4().hex[:6]}",
                )
                cpu_started = time.process_time()
                report = run_worker(settings, until_idle=1.0, runner=runner)
                cpu = time.process_time() - cpu_started
                worker_rate = report.consumed / report.active_seconds if report.active_seconds else 0.0
                name = "worker" if runner == "kafka" else "faust_worker"
                figures = {
                    f"{name}_records_per_s": round(worker_rate),
                    f"{name}_vs_raw": round(worker_rate / raw_rate, 3) if raw_rate else None,
                    f"{name}_consumed": report.consumed,
                    f"{name}_batches": report.batches,
                    f"{name}_active_seconds": report.active_seconds,
                    f"{name}_cpu_seconds": round(cpu, 2),
                    f"{name}_stage_seconds": {k: round(v, 3) for k, v in report.stage_seconds.items()},
                }
                if runner == "kafka":
                    runs.append({"raw_confluent_kafka_records_per_s": round(raw_rate), **figures})
                else:
                    runs[-1].update(figures)
            runs[-1]["load_average"] = os.getloadavg()[0]
            if args.format == "table" and args.repeat > 1:
                print(f"run {repeat + 1}: {json.dumps(runs[-1])}", flush=True)
    rates = sorted(run["worker_records_per_s"] for run in runs)
    result: dict[str, Any] = {
        "records": total,
        **runs[len(runs) // 2],
        "worker_records_per_s_all_runs": [run["worker_records_per_s"] for run in runs],
        "worker_records_per_s_median": rates[len(rates) // 2],
        "budget_records_per_s": 50_000,
    }
    if args.faust:
        faust_rates = sorted(run["faust_worker_records_per_s"] for run in runs)
        result["faust_worker_records_per_s_all_runs"] = [run["faust_worker_records_per_s"] for run in runs]
        result["faust_worker_records_per_s_median"] = faust_rates[len(faust_rates) // 2]
    if args.format == "json":
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:36} {value}")


if __name__ == "__main__":
    main()
