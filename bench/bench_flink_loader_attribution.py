"""The Flink loader's attribution work, check mode next to trust mode (decision 0105), no Kafka, no JVM,
no warehouse: CPU seconds of the loader's Python per run over the same records and the same job rows.

Records as bench_stream.py's kernel-only run (``--units`` units, one exposure and ``--events-per-unit``
events each), in batches of ``--batch-size`` (the Flink loader's batches are one checkpoint's records);
the job's rows are the kernel's own rows written as the job writes them (JSON, keyed by unit), split
over the batches in step. Per batch:

- check (0102): ``StreamProcessor.process`` attributing every event, the kernel's rows taken as Python
  tuples, the job's rows parsed (``json.loads`` each) and matched (``AttributionCheck``);
- trust (0105): ``process`` told the job attributes every event (none attributed or held by the kernel),
  the job's rows read into an Arrow table (``job_rows_table``) and appended.

- kernel: ``process`` alone, attributing every event (the Kafka runner's kernel work, for scale).

Runs alternate (check, trust, kernel, check, …) after one warm-up of each; ``time.process_time`` (its
CPU). Run::

    .venv/bin/python bench/bench_flink_loader_attribution.py [--units 20000] [--events-per-unit 4]
        [--batch-size 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import pyarrow as pa

from bench._workload import unit_events, unit_exposure
from pipelines.attribution import AttributionState
from pipelines.flink.attribution_check import AttributionCheck, job_rows, kernel_rows
from pipelines.flink.attribution_load import job_rows_table
from pipelines.kernel import RawRecord, ValidationRules
from pipelines.processor import RegistryView, StreamProcessor

BASE = datetime(2026, 11, 26, tzinfo=UTC)
NOW = BASE + timedelta(minutes=31)
REGISTRY = RegistryView({"bench": frozenset({0, 1})}, {("bench", 0): "Control", ("bench", 1): "Treat"})


def records(units: int, events_per_unit: int, batch_size: int) -> list[list[RawRecord]]:
    rng = random.Random(7)
    kafka_ms = round(BASE.timestamp() * 1000) + 1_800_000
    xs: list[RawRecord] = []
    es: list[RawRecord] = []
    for u in range(units):
        unit = f"u7-{u}"
        at = BASE + timedelta(seconds=rng.randrange(600))
        exposure = unit_exposure(unit, u, at)
        xs.append(RawRecord("x", u % 3, len(xs), unit.encode(), msgspec.json.encode(exposure), kafka_ms))
        for event in unit_events(unit, events_per_unit, at, rng):
            es.append(RawRecord("e", u % 3, len(es), unit.encode(), msgspec.json.encode(event), kafka_ms))
    share = batch_size // (1 + events_per_unit)
    batches: list[list[RawRecord]] = []
    while xs or es:
        batches.append(xs[:share] + es[: batch_size - share])
        del xs[:share], es[: batch_size - share]
    return batches


def processor() -> StreamProcessor:
    made = StreamProcessor(
        exposures_topic="x",
        events_topic="e",
        rules=ValidationRules(
            known_event_names=frozenset({"purchase", "pageview"}), max_lateness=timedelta(days=30)
        ),
        registry=REGISTRY,
        attribution=AttributionState(default_window=timedelta(days=7), hold=timedelta(minutes=5)),
        dedup_retention=timedelta(hours=1),
        dedup_max_ids=1_000_000,
        max_record_bytes=100_000,
    )
    made.set_registry(REGISTRY)
    return made


def job_records(batches: list[list[RawRecord]]) -> list[list[tuple[bytes, bytes, str]]]:
    """The kernel's rows of each batch written as the job writes them (its JSON, keyed by unit)."""
    kernel = processor()
    out = []
    for raws in batches:
        output = kernel.process(raws, NOW)
        kernel.remember_ids(output)
        rows = []
        for (event_id, experiment), (unit, variation, name, value, occurred, first) in kernel_rows(
            output.attributed
        ):
            row = {
                "event_id": event_id,
                "unit_id": unit,
                "experiment_key": experiment,
                "variation_id": variation,
                "event_name": name,
                "value": value,
                "occurred_us": occurred,
                "first_us": first,
            }
            rows.append((unit.encode(), json.dumps(row).encode(), "bench"))
        out.append(rows)
    return out


def check_run(batches: list[list[RawRecord]], rows: list[list[tuple[bytes, bytes, str]]]) -> Counter[str]:
    kernel, counts = processor(), Counter[str]()
    check = AttributionCheck(counts)
    for raws, job in zip(batches, rows, strict=True):
        check.add_job(job_rows([value for _, value, _ in job]))
        output = kernel.process(raws, NOW)
        kernel.remember_ids(output)
        check.add_kernel(kernel_rows(output.attributed))
    check.finish()
    return counts


def kernel_run(batches: list[list[RawRecord]]) -> int:
    kernel, loaded = processor(), 0
    for raws in batches:
        output = kernel.process(raws, NOW)
        kernel.remember_ids(output)
        loaded += output.attributed.num_rows
    return loaded


def trust_run(batches: list[list[RawRecord]], rows: list[list[tuple[bytes, bytes, str]]]) -> int:
    kernel, loaded = processor(), 0
    for raws, job in zip(batches, rows, strict=True):
        table = job_rows_table(job, REGISTRY.known_variations)
        elsewhere = {(raw.topic, raw.partition, raw.offset) for raw in raws if raw.topic == "e"}
        output = kernel.process(raws, NOW, elsewhere)
        kernel.remember_ids(output)
        loaded += pa.concat_tables([output.attributed, table]).num_rows
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--events-per-unit", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = records(args.units, args.events_per_unit, args.batch_size)
    rows = job_records(batches)
    expected = sum(map(len, rows))
    seconds: dict[str, list[float]] = {"check": [], "trust": [], "kernel": []}
    modes = list(seconds)
    for run in range(len(modes) * (args.repeat + 1)):
        mode = modes[run % len(modes)]
        started = time.process_time()
        if mode == "check":
            counts = check_run(batches, rows)
            assert counts == Counter({"agree": expected}), counts
        elif mode == "trust":
            assert trust_run(batches, rows) == expected
        else:
            assert kernel_run(batches) == expected
        if run >= len(modes):  # the first of each is a warm-up
            seconds[mode].append(time.process_time() - started)
    result: dict[str, Any] = {
        "records": sum(map(len, batches)),
        "job_rows": expected,
        "batches": len(batches),
        **{f"{mode}_cpu_s": [round(s, 3) for s in runs] for mode, runs in seconds.items()},
        **{f"{mode}_median_s": round(statistics.median(runs), 3) for mode, runs in seconds.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
