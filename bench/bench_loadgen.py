"""`xp loadgen` throughput: simulate + produce, next to its two halves in the same run.

- ``simulate only``: :class:`~xpstream.loadgen.simulate.LoadSimulator` batches, no Kafka (each
  batch dropped once counted, as the command does after producing it);
- ``raw produce`` (baseline): the same pre-built records through a bare confluent-kafka producer
  loop (``produce`` + ``poll(0)`` every 1,000 + ``flush``) with the project's producer settings;
- ``loadgen``: the whole path as `xp loadgen` runs it (simulate chunk by chunk, produce, flush).

Needs a broker (``XP_KAFKA_BOOTSTRAP``, default the local stack); topics get a unique prefix and are
deleted afterwards. Aim (issue #4): ≥ 100,000 records/s unthrottled. Run::

    .venv/bin/python bench/bench_loadgen.py [--users 100000] [--format json]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()

    from assignment.authoring import load_payload_file
    from xpcore.config import CoreSettings

    DEMO_PAYLOAD = load_payload_file(Path(__file__).resolve().parents[1] / "examples" / "experiments.yaml")
    from xpcore.kafka import ensure_topics
    from xpcore.kafka.admin import admin_client
    from xpcore.kafka.clients import make_producer
    from xpcore.kafka.topics import topic_specs
    from xpstream.loadgen.produce import PRODUCER_OVERRIDES, RecordProducer
    from xpstream.loadgen.simulate import LoadgenOptions, LoadSimulator
    from xpstream.loadgen.sources import experiments_from_payload

    settings = CoreSettings(topic_prefix=f"bench-loadgen-{uuid.uuid4().hex[:8]}.")
    ensure_topics(settings)
    experiments = experiments_from_payload(DEMO_PAYLOAD)

    def options(seed: int) -> LoadgenOptions:
        return LoadgenOptions(now=datetime.now(UTC), users=args.users, seed=seed, invalid_fraction=0.001)

    rows: list[dict[str, Any]] = []
    try:
        began = time.perf_counter()
        records = sum(len(batch) for batch in LoadSimulator(DEMO_PAYLOAD, experiments, options(1)).batches())
        rows.append({"path": "simulate only", "records": records, "seconds": time.perf_counter() - began})
        batches = list(LoadSimulator(DEMO_PAYLOAD, experiments, options(1)).batches())  # baseline's input

        producer = make_producer(settings, **PRODUCER_OVERRIDES)
        topics = {name: settings.topic(name) for name in ("xp.exposures", "xp.events")}
        began = time.perf_counter()
        for batch in batches:
            for i, (logical, key, value) in enumerate(batch):
                while True:
                    try:
                        producer.produce(topics[logical], value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                if i % 1000 == 0:
                    producer.poll(0)
        left = producer.flush(60)
        rows.append(
            {"path": "raw produce (baseline)", "records": records, "seconds": time.perf_counter() - began}
        )
        assert left == 0, f"{left} records not delivered"
        del batches

        began = time.perf_counter()
        simulator = LoadSimulator(DEMO_PAYLOAD, experiments, options(2))
        sender = RecordProducer(settings)
        for batch in simulator.batches():
            sender.send(batch)
        report = sender.close()
        assert report.failed == 0, report.first_error
        rows.append(
            {
                "path": "loadgen (simulate + produce)",
                "records": report.sent,
                "seconds": time.perf_counter() - began,
            }
        )
    finally:
        admin_client(settings).delete_topics(list(topic_specs(settings)), operation_timeout=10)
    for row in rows:
        row["records_per_second"] = round(row["records"] / row["seconds"])
        row["seconds"] = round(row["seconds"], 2)
    if args.format == "json":
        print(json.dumps({"users": args.users, "results": rows}))
        return
    print(
        f"loadgen, {args.users} users (exposures + 5 events per user), bootstrap {settings.kafka_bootstrap}"
    )
    for row in rows:
        print(
            f"  {row['path']:<30} {row['records']:>9} records {row['seconds']:>7.2f} s "
            f"{row['records_per_second']:>9,}/s"
        )


if __name__ == "__main__":
    main()
