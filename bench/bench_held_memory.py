"""What the stream worker keeps in memory per held event and per first exposure (sizing, docs/pipeline.md).

A real :class:`~pipelines.processor.StreamProcessor` processes ``--events`` metric events of units it has
no exposure for (so every one is held for a late exposure, decision 0108's columnar held store), in
50,000-record batches as the worker does; Python's traced memory (``tracemalloc``: the blocks allocated,
not the interpreter's pools) is read with them held and again after the same state releases them all
(cap 0), so the difference is what holding them costs. Then ``--exposures`` first exposures of distinct
units: traced memory after them minus before (the first-exposure state and its columns, plus the open
deduplication slice, 8 B per id). Baseline, same run: the records' own JSON bytes on the wire.

    .venv/bin/python bench/bench_held_memory.py [--events 200000] [--exposures 200000] [--ids uuid|short]
"""

from __future__ import annotations

import argparse
import gc
import random
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from bench._workload import bench_kernel, unit_exposure
from pipelines.attribution import AttributionState
from pipelines.kernel import RawRecord, ValidationRules
from pipelines.processor import StreamProcessor
from schemas import MetricEvent

BATCH = 50_000
KEYS = ("bench-a",)


def _event_id(rng: random.Random, index: int, ids: str) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128))) if ids == "uuid" else f"e-{index}"


def _events(count: int, ids: str, rng: random.Random, base: datetime, kafka_ms: int) -> list[RawRecord]:
    records = []
    for index in range(count):
        unit = f"user-{rng.randrange(1_000_000):07d}"
        name = "purchase" if index % 4 == 0 else "pageview"
        event = MetricEvent(
            event_id=_event_id(rng, index, ids),
            unit_id=unit,
            event_name=name,
            value=12.5 if name == "purchase" else None,
            occurred_at=base + timedelta(milliseconds=rng.randrange(300_000)),
        )
        records.append(RawRecord("e", 0, index, unit.encode(), msgspec.json.encode(event), kafka_ms))
    return records


def _exposures(count: int, ids: str, rng: random.Random, base: datetime, kafka_ms: int) -> list[RawRecord]:
    records = []
    for index in range(count):
        unit = f"unit-{index:07d}"
        at = base + timedelta(milliseconds=rng.randrange(300_000))
        exposure = unit_exposure(unit, index, at, KEYS[0], _event_id(rng, index, ids))
        records.append(RawRecord("x", 0, index, unit.encode(), msgspec.json.encode(exposure), kafka_ms))
    return records


def _processor(state: AttributionState) -> StreamProcessor:
    rules = ValidationRules(
        known_event_names=frozenset({"purchase", "pageview"}),
        known_variations={key: frozenset({0, 1}) for key in KEYS},
    )
    return bench_kernel(KEYS, state, rules)


def _run(processor: StreamProcessor, records: list[RawRecord], now: datetime) -> None:
    for start in range(0, len(records), BATCH):
        processor.remember_ids(processor.process(records[start : start + BATCH], now))


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--exposures", type=int, default=200_000)
    parser.add_argument("--ids", choices=("uuid", "short"), default="uuid", help="event and exposure ids")
    args = parser.parse_args()
    rng = random.Random(7)
    now = datetime.now(UTC)
    base, kafka_ms = now - timedelta(minutes=5), round(now.timestamp() * 1000)
    events = _events(args.events, args.ids, rng, base, kafka_ms)
    exposures = _exposures(args.exposures, args.ids, rng, base, kafka_ms)
    state = AttributionState(default_window=timedelta(days=14), hold=timedelta(seconds=300), max_held=10**9)
    processor = _processor(state)
    tracemalloc.start()
    _run(processor, events, now)
    held = state.held_count
    with_held = _traced()
    state.max_held = 0
    released = state.release_expired(now)
    without_held = _traced()
    _run(processor, exposures, now)
    with_exposures = _traced()
    tracemalloc.stop()
    if held != args.events or released != held:
        raise SystemExit(f"expected {args.events} held and released, got {held} held, {released} released")
    event_bytes = sum(len(record.value or b"") for record in events) / max(len(events), 1)
    exposure_bytes = sum(len(record.value or b"") for record in exposures) / max(len(exposures), 1)
    print(f"ids: {args.ids}")
    print(
        f"held event      {(with_held - without_held) / max(held, 1):6.0f} B each ({held:,} held)"
        f"   baseline: {event_bytes:4.0f} B of JSON each"
    )
    print(
        f"first exposure  {(with_exposures - without_held) / max(len(exposures), 1):6.0f} B each"
        f" ({len(exposures):,} units × 1 experiment)   baseline: {exposure_bytes:4.0f} B of JSON each"
    )


if __name__ == "__main__":
    main()
