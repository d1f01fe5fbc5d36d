"""A small, realistic data set in a warehouse, for the dashboards' tests, screenshots and demos.

:func:`seed_sample_data` publishes the registry of ``examples/experiments.yaml`` into ``xp.registry`` (as
the stream would), then for two running experiments: exposures over the last ``minutes`` minutes, raw
events in ``xp.events`` and their attributions in ``xp.attributed_events`` (as the stream would), a few
dead letters, results snapshots (``xp.results``, via :func:`jobs.results.snapshots.store_results`) and daily
aggregates (``xp.daily_metrics``, via the ETL) and, when the quality tables exist, twelve hourly
quality runs with two alerts (one resolved). Deterministic for a given ``seed`` and ``now``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from xpcore.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from schemas import RegistryRecord
    from xpcore.warehouse import Warehouse

__all__ = ["EXAMPLES", "SampleData", "add_traffic", "seed_sample_data"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "experiments.yaml"

COUNTRIES = ("US", "US", "US", "DE", "DE", "BR", "IN", "FR")
# experiment → per-variation purchase probability (green converts better)
CONVERSION = {"checkout-button": (0.10, 0.135, 0.10), "pricing-page-annual-first": (0.08, 0.085)}


@dataclass
class SampleData:
    """What was written (counts), for assertions."""

    now: datetime
    exposures: int = 0
    events: int = 0
    dead_letters: int = 0
    snapshots: int = 0
    units: dict[str, int] = field(default_factory=dict)
    quality_rows: int = 0
    records: list[RegistryRecord] = field(default_factory=list)
    """The registry changes stored in ``xp.registry`` (publish them to Kafka for `xp results`)."""


def _registry(warehouse: Warehouse, now: datetime) -> tuple[list[RegistryRecord], dict[str, ExperimentSpec]]:
    from assignment.authoring import load_registry_file
    from assignment.registry import RegistrySnapshot
    from assignment.registry_changes import plan_changes
    from schemas import RegistryRecord
    from schemas.arrow import to_arrow

    authored = load_registry_file(EXAMPLES)
    records = plan_changes(
        RegistrySnapshot(), authored, actor="alice@example.com", now=now - timedelta(days=2)
    )
    warehouse.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
    return records, dict(RegistrySnapshot.from_records(records).experiments)


def add_traffic(
    warehouse: Warehouse,
    *,
    experiment: str,
    variations: int,
    units: int,
    start: datetime,
    minutes: float,
    seed: int,
    prefix: str = "u",
) -> tuple[int, int]:
    """Exposures (one per unit, spread over ``minutes`` from ``start``) and their events; returns
    (exposures, events) written."""
    from pipelines.attribution import Attribution
    from pipelines.processor import attributions_table
    from schemas import Exposure, ExposureSource, MetricEvent
    from schemas.arrow import to_arrow

    if experiment not in CONVERSION:
        raise ValidationError(f"no sample conversion rates for {experiment!r}")
    rng = random.Random(seed)
    rates = CONVERSION[experiment]
    exposures, events, attributions = [], [], []
    for u in range(units):
        unit = f"{prefix}{seed}-{u}"
        variation = rng.randrange(variations)
        at = start + timedelta(seconds=rng.uniform(0, minutes * 60))
        exposures.append(
            Exposure(
                exposure_id=f"x-{experiment}-{unit}",
                unit_id=unit,
                hash_attribute="id",
                experiment_key=experiment,
                variation_id=variation,
                variation_key=f"v{variation}",
                overridden=False,
                source=ExposureSource.LOADGEN,
                attributes={"country": rng.choice(COUNTRIES)},
                exposed_at=at,
            )
        )
        happened: list[tuple[str, float | None]] = [("pageview", None)] * rng.choice([1, 1, 2, 3])
        if rng.random() < rates[variation]:
            happened.append(("purchase", round(rng.uniform(10, 80), 2)))
            if rng.random() < 0.05:
                happened.append(("refund", None))
        if rng.random() < 0.3:
            happened.append(("add_to_cart", None))
        for j, (name, value) in enumerate(happened):
            occurred = at + timedelta(seconds=rng.uniform(1, 120))
            event_id = f"e-{experiment}-{unit}-{j}"
            events.append(
                MetricEvent(
                    event_id=event_id, unit_id=unit, event_name=name, value=value, occurred_at=occurred
                )
            )
            attributions.append(Attribution(event_id, unit, experiment, variation, name, value, occurred, at))
    warehouse.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
    warehouse.insert_arrow("xp.events", to_arrow(events, MetricEvent))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(attributions))
    return len(exposures), len(events)


def _dead_letters(warehouse: Warehouse, now: datetime, count: int, seed: int) -> int:
    from schemas import DeadLetter, DeadLetterReason, RecordKind
    from schemas.arrow import to_arrow

    rng = random.Random(seed)
    reasons = [
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.SCHEMA_VIOLATION,
        DeadLetterReason.MISSING_FIELD,
    ]
    rows = [
        DeadLetter(
            dead_letter_id=f"d-{seed}-{i}",
            reason=rng.choice(reasons),
            detail="sample",
            record_kind=RecordKind.METRIC_EVENT,
            source_topic="xp.events",
            original=b"{not json",
            received_at=now - timedelta(seconds=rng.uniform(0, 1800)),
        )
        for i in range(count)
    ]
    warehouse.insert_arrow("xp.dead_letters", to_arrow(rows, DeadLetter))
    return count


def _quality(warehouse: Warehouse, now: datetime, seed: int) -> int:
    """Twelve hourly quality runs and two alerts (one resolved), when the quality tables exist (0006)."""
    import pyarrow as pa

    present = warehouse.query_arrow(
        "SELECT count() AS n FROM system.tables WHERE database = 'xp' AND name IN ('dq_results', 'alerts')"
    ).to_pylist()[0]["n"]
    if present < 2:
        return 0
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for hour in range(12, 0, -1):
        base = {"run_id": f"sample-{hour}", "run_at": now - timedelta(hours=hour), "detail": "sample run"}
        late = hour in (3, 2)
        outcomes = [
            ("srm", "checkout-button", None, True, "error", f"{rng.uniform(0.2, 0.9):.3f}", "0.001"),
            ("freshness", None, "xp.events", not late, "error", "900" if late else "40", "600"),
            ("null_rate", None, "xp.events", hour != 1, "warning", "0.03" if hour == 1 else "0.0", "0.01"),
            ("dead_letter_rate", None, "xp.dead_letters", True, "warning", "0.002", "0.01"),
        ]
        for check, experiment, table_name, success, severity, observed, threshold in outcomes:
            rows.append(
                {
                    **base,
                    "check": check,
                    "experiment": experiment,
                    "table_name": table_name,
                    "success": success,
                    "severity": severity,
                    "observed": observed,
                    "threshold": threshold,
                }
            )
    text = pa.string()
    schema = pa.schema(
        [
            ("run_id", text),
            ("run_at", pa.timestamp("ms", tz="UTC")),
            ("check", text),
            ("experiment", text),
            ("table_name", text),
            ("success", pa.bool_()),
            ("severity", text),
            ("observed", text),
            ("threshold", text),
            ("detail", text),
        ]
    )
    warehouse.insert_arrow("xp.dq_results", pa.Table.from_pylist(rows, schema=schema))
    alert = {"experiment": None, "table_name": "xp.events"}
    alerts = [
        {
            **alert,
            "alert_id": "sample-a1",
            "fingerprint": "freshness||xp.events",
            "state": "firing",
            "check": "freshness",
            "detail": "newest event is 15 min old (limit 10 min)",
            "run_id": "sample-3",
            "at": now - timedelta(hours=3),
        },
        {
            **alert,
            "alert_id": "sample-a2",
            "fingerprint": "freshness||xp.events",
            "state": "resolved",
            "check": "freshness",
            "detail": "fresh again",
            "run_id": "sample-1",
            "at": now - timedelta(hours=1),
        },
        {
            **alert,
            "alert_id": "sample-a3",
            "fingerprint": "null_rate||xp.events",
            "state": "firing",
            "check": "null_rate",
            "detail": "value is null in 3% of purchase events",
            "run_id": "sample-1",
            "at": now - timedelta(hours=1),
        },
    ]
    alert_schema = pa.schema(
        [
            *(
                (name, text)
                for name in ("alert_id", "fingerprint", "state", "check", "experiment", "table_name")
            ),
            *((name, text) for name in ("detail", "run_id")),
            ("at", pa.timestamp("ms", tz="UTC")),
        ]
    )
    warehouse.insert_arrow("xp.alerts", pa.Table.from_pylist(alerts, schema=alert_schema))
    return len(rows)


def seed_sample_data(
    warehouse: Warehouse,
    *,
    now: datetime | None = None,
    units: int = 3000,
    minutes: float = 40,
    seed: int = 7,
    quality: bool = True,
) -> SampleData:
    """Fill an empty, migrated warehouse with the sample data set (see the module docstring)."""
    from jobs.etl import etl_range, rollup_experiments
    from jobs.results.compute import compute_experiment_result
    from jobs.results.snapshots import store_results

    now = (now or datetime.now(UTC)).astimezone(UTC)
    data = SampleData(now=now)
    data.records, specs = _registry(warehouse, now)
    start = now - timedelta(minutes=minutes)
    for offset, (key, rates) in enumerate(CONVERSION.items()):
        count = units if offset == 0 else units // 2
        written = add_traffic(
            warehouse,
            experiment=key,
            variations=len(rates),
            units=count,
            start=start,
            minutes=minutes,
            seed=seed + offset,
        )
        data.exposures += written[0]
        data.events += written[1]
        data.units[key] = count
    data.dead_letters = _dead_letters(warehouse, now, 25, seed)
    if quality:
        data.quality_rows = _quality(warehouse, now, seed)
    for key in CONVERSION:
        spec = specs[key]
        for step in range(6, -1, -1):
            at = now - timedelta(minutes=step * 5)
            result = compute_experiment_result(warehouse, spec, until=at, computed_at=at)
            data.snapshots += bool(store_results(warehouse, [result]))
    experiments = [specs[key] for key in CONVERSION]
    rollup_experiments(
        warehouse, experiments, etl_range(now - timedelta(days=1), now + timedelta(minutes=1), now=now)
    )
    return data
