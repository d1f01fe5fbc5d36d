"""Stream worker at a steady rate: freshness (event time → queryable) and memory over time.

Budgets (DESIGN.md): freshness p99 ≤ 2 s at a steady 10,000 events/s; worker memory flat over a 30-minute
soak. Same run, same producer, same rate, two phases:

1. ``raw confluent-kafka`` (the floor): a plain consumer reads the topics while the producer sends;
   freshness = receive time − event time. It measures the broker + client path with nothing else.
2. ``xp stream worker``: ``run_worker`` in this process from a fresh group and chDB store while the producer
   sends; a record is *queryable* when the warehouse insert of its batch returns (the bench wraps the
   worker's warehouse and notes that moment for every exposure and event it inserts); freshness = that
   moment − the record's event time (set when the producer builds it, so it includes the producer's queue).

Traffic: visits cycle through a population of ``--units`` units (users come back, as in real traffic);
each visit sends one exposure and four events with fresh ids. Worker state is bounded by that population
(first exposures) plus the deduplication cap/retention, so memory should level off once those fill.

Memory: the worker process's RSS is sampled every ``--sample-seconds``; the report gives RSS after warm-up,
at half time, at the end, the peak, and least-squares slopes (MB per 10 minutes) over all post-warm-up
samples and over each half. The raw phase's RSS (the same process, so the interpreter and librdkafka) is
the baseline. Freshness samples go into a fixed 1 ms histogram (``Freshness``), so the bench's own
bookkeeping does not grow with the run (a list of floats did: ~190 MB per 10 minutes at 10k/s, which an
earlier soak counted as worker memory). For the 30-minute soak::

    .venv/bin/python bench/bench_stream_steady.py --seconds 1800 --rate 10000

A quick run (the default: 60 s per phase)::

    .venv/bin/python bench/bench_stream_steady.py [--rate 10000] [--seconds 60] [--format json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._broker import bench_broker
from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec
from xpcore.config import KafkaSettings, StreamSettings
from xpcore.kafka import EVENTS, EXPOSURES
from xpstream.loadgen.ratelimit import TokenBucket

REGISTRY = {
    "experiments": {"bench": {"variations": [{"id": 0, "name": "Control"}, {"id": 1, "name": "Treat"}]}}
}
EVENTS_PER_UNIT = 4
WARMUP_SECONDS = 10.0


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class SteadyProducer(threading.Thread):
    """Sends one exposure then four events per unit, ``rate`` records/s, for ``seconds``."""

    def __init__(
        self, settings: KafkaSettings, rate: float, seconds: float, run: str, population: int
    ) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate, self.seconds, self.run_id = settings, rate, seconds, run
        self.population = population
        self.sent = 0

    def run(self) -> None:
        from xpcore.kafka.clients import make_producer

        exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure)
        event_codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
        producer = make_producer(self.settings, **{"linger.ms": 5})
        exposures, events = self.settings.topic(EXPOSURES), self.settings.topic(EVENTS)
        bucket = TokenBucket(self.rate, burst=self.rate / 50)
        deadline = time.monotonic() + self.seconds
        visit = 0
        while time.monotonic() < deadline:
            bucket.acquire(1 + EVENTS_PER_UNIT)
            unit_number = visit % self.population
            unit = f"{self.run_id}-{unit_number}"
            visit += 1
            now = datetime.now(UTC)
            exposure = Exposure(
                exposure_id=f"x-{unit}-{visit}",
                unit_id=unit,
                hash_attribute="id",
                experiment_key="bench",
                variation_id=unit_number % 2,
                variation_key=str(unit_number % 2),
                source=ExposureSource.LOADGEN,
                exposed_at=now,
            )
            producer.produce(exposures, key=unit.encode(), value=exposure_codec.encode(exposure))
            for j in range(EVENTS_PER_UNIT):
                name = "purchase" if j == 0 else "pageview"
                event = MetricEvent(
                    event_id=f"e-{unit}-{visit}-{j}",
                    unit_id=unit,
                    event_name=name,
                    value=12.5 if name == "purchase" else None,
                    occurred_at=datetime.now(UTC),
                )
                producer.produce(events, key=unit.encode(), value=event_codec.encode(event))
            self.sent += 1 + EVENTS_PER_UNIT
            producer.poll(0)
        producer.flush(60)


class MemorySampler(threading.Thread):
    """RSS of this process, Python's allocated blocks, and (worker phase) chDB's own MemoryTracking."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self.detail: list[dict[str, float]] = []
        self.warehouse: Any = None
        self.stopped = threading.Event()

    def _engine_mb(self) -> float:
        if self.warehouse is None:
            return float("nan")
        try:
            table = self.warehouse.query_arrow(
                "SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'"
            )
            return float(table.column(0)[0].as_py()) / 2**20
        except Exception:
            return float("nan")

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.is_set():
            at, rss = time.monotonic() - started, rss_mb()
            self.samples.append((at, rss))
            self.detail.append(
                {
                    "t": round(at),
                    "rss_mb": round(rss, 1),
                    "python_blocks_m": round(sys.getallocatedblocks() / 1e6, 2),
                    "chdb_tracked_mb": round(self._engine_mb(), 1),
                }
            )
            self.stopped.wait(self.every)

    def summary(self) -> dict[str, Any]:
        after = [(t, m) for t, m in self.samples if t >= WARMUP_SECONDS] or self.samples
        times = np.array([t for t, _ in after])
        mbs = np.array([m for _, m in after])
        slope = float(np.polyfit(times, mbs, 1)[0]) * 600 if len(after) >= 3 else float("nan")
        half = len(after) // 2
        early = float(np.polyfit(times[:half], mbs[:half], 1)[0]) * 600 if half >= 3 else float("nan")
        late = (
            float(np.polyfit(times[half:], mbs[half:], 1)[0]) * 600
            if len(after) - half >= 3
            else float("nan")
        )
        return {
            "rss_after_warmup_mb": round(float(mbs[0]), 1),
            "rss_end_mb": round(float(mbs[-1]), 1),
            "rss_peak_mb": round(float(mbs.max()), 1),
            "rss_slope_mb_per_10min": round(slope, 2),
            "rss_slope_first_half_mb_per_10min": round(early, 2),
            "rss_slope_second_half_mb_per_10min": round(late, 2),
            "rss_at_half_mb": round(float(mbs[half]), 1) if len(mbs) else float("nan"),
            "samples": len(self.samples),
            "series": self.detail,
        }


class Freshness:
    """Freshness samples as a histogram of 1 ms bins (up to 10 min; beyond: the last bin), max kept exactly.

    Fixed memory (~5 MB), so the soak's RSS measures the worker, not the bench: a list of one Python float
    per record would grow by ~190 MB per 10 minutes at 10k/s and read as a leak.
    """

    BINS = 600_000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, np.int64)
        self.counts.fill(0)
        self.count = 0
        self.max = 0.0

    def add(self, seconds: np.ndarray) -> None:
        if not len(seconds):
            return
        bins = np.clip((seconds * 1000.0).astype(np.int64), 0, self.BINS - 1)
        self.counts += np.bincount(bins, minlength=self.BINS)
        self.count += len(seconds)
        self.max = max(self.max, float(seconds.max()))

    def percentile(self, q: float) -> float:
        """Upper edge of the 1 ms bin holding the q-th percentile (seconds)."""
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, q / 100.0 * self.count))
        return (index + 1) / 1000.0

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"records": 0}
        return {
            "records": self.count,
            "p50_s": round(self.percentile(50), 3),
            "p99_s": round(self.percentile(99), 3),
            "max_s": round(self.max, 3),
        }


def _event_seconds(value: bytes) -> float:
    """Event time of an encoded exposure or event, in epoch seconds (cheap JSON peek)."""
    record = json.loads(value)
    stamp = record.get("occurred_at") or record.get("exposed_at")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_raw(
    settings: KafkaSettings, rate: float, seconds: float, sample_every: float, population: int
) -> dict[str, Any]:
    from xpcore.kafka.clients import make_consumer

    consumer = make_consumer(settings, f"bench-raw-{uuid.uuid4().hex[:6]}", **{"fetch.wait.max.ms": 100})
    consumer.subscribe([settings.topic(EXPOSURES), settings.topic(EVENTS)])
    producer = SteadyProducer(settings, rate, seconds, f"raw{uuid.uuid4().hex[:4]}", population)
    sampler = MemorySampler(sample_every)
    latencies = Freshness()
    producer_started = time.time()
    producer.start()
    sampler.start()
    idle_since: float | None = None
    while True:
        messages = consumer.consume(5000, timeout=0.2)
        now = time.time()
        batch: list[float] = []
        for message in messages:
            if message.error() is None:
                event_time = _event_seconds(message.value())
                if event_time - producer_started >= WARMUP_SECONDS:
                    batch.append(now - event_time)
        latencies.add(np.array(batch, np.float64))
        if messages:
            idle_since = None
        elif not producer.is_alive():
            idle_since = idle_since or now
            if now - idle_since > 2.0:
                break
    sampler.stopped.set()
    consumer.close()
    return {"sent": producer.sent, "freshness": latencies.summary(), "memory": sampler.summary()}


class TimingWarehouse:
    """Delegates to the worker's warehouse; notes when each exposure/event insert returns."""

    def __init__(self, inner: Any, latencies: Freshness, not_before: float) -> None:
        self._inner, self._latencies, self._not_before = inner, latencies, not_before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def insert_arrow(self, table: str, data: pa.Table, **kwargs: Any) -> int:
        written = self._inner.insert_arrow(table, data, **kwargs)
        column = {"xp.exposures": "exposed_at", "xp.events": "occurred_at"}.get(table)
        if column is not None and data.num_rows:
            done = time.time()
            stamps = data.column(column).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            seconds = np.asarray(stamps.to_numpy(zero_copy_only=False), dtype=np.float64) / 1000.0
            self._latencies.add(done - seconds[seconds >= self._not_before])
        return int(written)


def run_worker_phase(
    kafka: KafkaSettings, home: Path, rate: float, seconds: float, sample_every: float, population: int
) -> dict[str, Any]:
    import xpcore.warehouse as warehouse_module
    from pipelines.worker import run_worker

    registry = home / "registry.json"
    registry.write_text(json.dumps(REGISTRY))
    settings = StreamSettings(
        home=home / "xp-home",
        kafka_bootstrap=kafka.kafka_bootstrap,
        topic_prefix=kafka.topic_prefix,
        stream_registry_file=registry,
        stream_group_id=f"xp-bench-steady-{uuid.uuid4().hex[:6]}",
    )
    latencies = Freshness()
    producer = SteadyProducer(kafka, rate, seconds, f"wk{uuid.uuid4().hex[:4]}", population)
    not_before = time.time() + WARMUP_SECONDS
    real_open = warehouse_module.open_warehouse

    sampler = MemorySampler(sample_every)

    def timed_open(*args: Any, **kwargs: Any) -> Any:
        sampler.warehouse = real_open(*args, **kwargs)
        return TimingWarehouse(sampler.warehouse, latencies, not_before)

    warehouse_module.open_warehouse = timed_open  # type: ignore[assignment]
    producer.start()
    sampler.start()
    try:
        report = run_worker(settings, until_idle=2.0)
    finally:
        warehouse_module.open_warehouse = real_open
        sampler.stopped.set()
    producer.join()
    return {
        "sent": producer.sent,
        "consumed": report.consumed,
        "freshness": latencies.summary(),
        "memory": sampler.summary(),
        "batches": report.batches,
        "stage_seconds": {k: round(v, 3) for k, v in report.stage_seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10_000, help="Records per second (both phases).")
    parser.add_argument("--seconds", type=float, default=60, help="Length of each phase.")
    parser.add_argument(
        "--raw-seconds",
        type=float,
        default=None,
        help="Length of the raw phase (default: min(--seconds, 60)).",
    )
    parser.add_argument(
        "--units",
        type=int,
        default=200_000,
        help="Unit population: visits cycle through it (each visit: 1 exposure + 4 events, fresh ids).",
    )
    parser.add_argument("--sample-seconds", type=float, default=5, help="RSS sampling interval.")
    parser.add_argument("--bootstrap", default=None, help="Use this running broker instead of starting one.")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from xpcore.kafka.topics import ensure_topics

    with (
        tempfile.TemporaryDirectory(prefix="xp-bench-steady-") as tmp,
        bench_broker(Path(tmp), args.bootstrap) as bootstrap,
    ):
        home = Path(tmp)
        raw_kafka = KafkaSettings(
            kafka_bootstrap=bootstrap, topic_prefix=f"steady-raw-{uuid.uuid4().hex[:6]}."
        )
        ensure_topics(raw_kafka)
        raw_seconds = args.raw_seconds or min(args.seconds, 60.0)
        raw = run_raw(raw_kafka, args.rate, raw_seconds, args.sample_seconds, args.units)
        worker_kafka = KafkaSettings(
            kafka_bootstrap=bootstrap, topic_prefix=f"steady-wk-{uuid.uuid4().hex[:6]}."
        )
        ensure_topics(worker_kafka)
        worker = run_worker_phase(
            worker_kafka, home, args.rate, args.seconds, args.sample_seconds, args.units
        )
    result = {
        "rate_records_per_s": args.rate,
        "worker_seconds": args.seconds,
        "unit_population": args.units,
        "raw_confluent_kafka": raw,
        "xp_stream_worker": worker,
        "budget": {"freshness_p99_s": 2.0, "memory": "flat over 30 minutes"},
    }
    if args.format == "json":
        print(json.dumps(result))
        return
    for phase in ("raw_confluent_kafka", "xp_stream_worker"):
        data: dict[str, Any] = result[phase]  # type: ignore[assignment]
        print(f"== {phase}: sent {data['sent']}")
        print(f"   freshness  {data['freshness']}")
        memory = {k: v for k, v in data["memory"].items() if k != "series"}
        print(f"   memory     {memory}")
        if "stage_seconds" in data:
            print(f"   worker     batches {data['batches']}, seconds per stage {data['stage_seconds']}")


if __name__ == "__main__":
    main()
