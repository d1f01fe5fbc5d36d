"""`make demo`: the whole path on the embedded defaults, visibly.

Start the local stack → assign simulated users with the assignment engine → produce their exposures
to Kafka (confluent-kafka) → consume and load them into the warehouse exactly once → print counts with
`xp sql` → stop the stack (only if the demo started it). Later issues extend this into the full
pipeline (loadgen, stream workers, results, dashboards).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from xpstream.config import CoreSettings

__all__ = ["DEMO_PAYLOAD", "main", "produce_demo_exposures"]

DEMO_PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout-button": {
            "defaultValue": "blue",
            "rules": [
                {
                    "key": "checkout-button-color",
                    "variations": ["blue", "green", "orange"],
                    "weights": [0.34, 0.33, 0.33],
                    "coverage": 1.0,
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "meta": [{"key": "control"}, {"key": "green"}, {"key": "orange"}],
                }
            ],
        }
    }
}


def build_demo_exposures(users: int, seed: int) -> list[Any]:
    """Exposures of ``users`` simulated units assigned by the real engine (deterministic for a seed)."""
    from assignment import CompiledPayload
    from schemas import Exposure, ExposureSource

    rng = random.Random(seed)
    payload = CompiledPayload(DEMO_PAYLOAD)
    units = [
        {"id": f"user-{seed}-{i}", "country": rng.choice(["US", "DE", "BR", "IN"])} for i in range(users)
    ]
    results = payload.evaluate_many("checkout-button", units)
    start = datetime.now(UTC) - timedelta(minutes=10)
    exposures = []
    for unit, result in zip(units, results, strict=True):
        if not result.in_experiment or result.variation_id is None:
            continue
        exposures.append(
            Exposure(
                exposure_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                unit_id=unit["id"],
                hash_attribute="id",
                experiment_key=result.experiment_key or "checkout-button-color",
                variation_id=result.variation_id,
                variation_key=result.variation_key or str(result.variation_id),
                feature_key="checkout-button",
                bucket=result.bucket,
                source=ExposureSource.LOADGEN,
                attributes={"country": unit["country"]},
                exposed_at=start + timedelta(milliseconds=rng.randrange(600_000)),
            )
        )
    return exposures


def produce_demo_exposures(settings: CoreSettings, exposures: list[Any]) -> int:
    """Produce exposures keyed by unit id; returns how many the broker acknowledged."""
    from schemas import Exposure, RecordCodec
    from xpstream.kafka import EXPOSURES
    from xpstream.kafka.clients import make_producer

    codec = RecordCodec(Exposure, max_record_bytes=settings.max_record_bytes)
    producer = make_producer(settings)
    topic = settings.topic(EXPOSURES)
    acknowledged = 0
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal acknowledged
        if error is None:
            acknowledged += 1
        else:
            failures.append(str(error))

    for exposure in exposures:
        producer.produce(topic, key=exposure.unit_id, value=codec.encode(exposure), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    if failures:
        raise RuntimeError(f"{len(failures)} exposures were not acknowledged, first: {failures[0]}")
    return acknowledged


def _xp_sql(query: str) -> None:
    print(f"$ xp sql {json.dumps(query)}", flush=True)
    subprocess.run([sys.executable, "-m", "xpstream.cli", "sql", query], check=True)


def main(users: int = 5000, seed: int | None = None) -> None:
    """Run the demo; exits non-zero on any failure. Each run simulates new users (seed = time)."""
    from pipelines.thin_loader import load_topic_into_table
    from schemas import Exposure
    from xpstream.kafka import EXPOSURES
    from xpstream.stack import start_kafka, stop_kafka
    from xpstream.warehouse import open_warehouse

    settings = CoreSettings()
    began = time.monotonic()
    seed = int(time.time()) if seed is None else seed
    print(f"== starting the local stack under {settings.home.resolve()}", flush=True)
    started = start_kafka(settings)
    try:
        print(f"   Kafka {started.bootstrap} (pid {started.pid}, {started.seconds:.1f}s)", flush=True)
        exposures = build_demo_exposures(users, seed)
        print(f"== assigned {users} simulated users; {len(exposures)} exposures to produce", flush=True)
        produced = produce_demo_exposures(settings, exposures)
        print(f"   produced {produced} exposures to {settings.topic(EXPOSURES)}", flush=True)
        warehouse = open_warehouse(settings)
        try:
            report = load_topic_into_table(
                settings,
                warehouse,
                topic=settings.topic(EXPOSURES),
                table="xp.exposures",
                record_type=Exposure,
                group_id="xp-demo-loader",
                expected=produced,
                idle_seconds=10.0,
            )
        finally:
            warehouse.close()
        print(
            f"== loaded {report.loaded} exposures in {report.batches} batches "
            f"({report.rejected} rejected) into {settings.location}",
            flush=True,
        )
        _xp_sql("SELECT count() AS exposures, uniqExact(unit_id) AS units FROM xp.exposures")
        _xp_sql(
            "SELECT experiment_key, variation_key, count() AS exposures FROM xp.exposures "
            "GROUP BY experiment_key, variation_key ORDER BY variation_key"
        )
    finally:
        if not started.already_running:
            stop_kafka(settings)
            print("== stopped the local stack", flush=True)
    print(f"== demo done in {time.monotonic() - began:.1f}s", flush=True)


if __name__ == "__main__":
    from xpstream.errors import XpError

    try:
        main()
    except XpError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
