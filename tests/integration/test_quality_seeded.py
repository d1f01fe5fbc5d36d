"""Known problems seeded straight into chDB are each caught by the right check, with the right detail.

One store holds them all (an 8% SRM, a burst of dead letters, a stale table, duplicate ids inserted
straight into xp.exposures, a volume drop); one run of the quality job must flag exactly those, store
every outcome in xp.dq_results, raise one alert per problem on the table and the real Kafka topic
xp.alerts, and render the report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pyarrow as pa
import pytest

from assignment.registry import ExperimentSpec, RegistrySnapshot, VariationSpec
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from quality.run import run_quality
from quality.settings import QualitySettings
from schemas import DeadLetter, Exposure, MetricEvent
from schemas.arrow import to_arrow
from schemas.records import DeadLetterReason, ExperimentStatus, RecordKind
from tests.factories import make_exposure
from xpcore.config import KafkaSettings
from xpcore.kafka.clients import make_consumer
from xpcore.kafka.topics import ALERTS
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

SRM = ExperimentSpec(
    key="srm-exp",
    name="SRM",
    status=ExperimentStatus.RUNNING,
    feature_key="srm-exp",
    variations=(VariationSpec(0, "control", "Control", 0.5), VariationSpec(1, "treatment", "Treatment", 0.5)),
)
REGISTRY = RegistrySnapshot(experiments=MappingProxyType({SRM.key: SRM}))
DUPLICATED = "x-srm-exp-c7-0"


def seed(warehouse: Warehouse, now: datetime) -> None:
    # 8% SRM: 10000 control units, 9200 treatment units (expected 9600 each), first exposed in the window
    exposures = [
        make_exposure(f"c{i}", 0, now - timedelta(hours=2), 0, False, "srm-exp") for i in range(10000)
    ]
    exposures += [
        make_exposure(f"t{i}", 1, now - timedelta(hours=2), 0, False, "srm-exp") for i in range(9200)
    ]
    warehouse.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
    # duplicate ids slipped in directly (bypassing the stream's dedup): 3 rows re-inserted a second later
    again = [
        make_exposure(f"c{i}", 0, now - timedelta(hours=2, seconds=-1), 0, False, "srm-exp")
        for i in (7, 8, 9)
    ]
    warehouse.insert_arrow("xp.exposures", to_arrow(again, Exposure))
    # tracking works: half of the units have attributed events
    attributions = [
        Attribution(
            f"a{e.unit_id}", e.unit_id, "srm-exp", e.variation_id, "purchase", 1.0, e.exposed_at, e.exposed_at
        )
        for e in exposures[::2]
    ]
    warehouse.insert_arrow("xp.attributed_events", attributions_table(attributions))
    # a volume drop and a stale table: 1000 events per earlier day, 100 today; all loaded 3 h ago
    events = [
        MetricEvent(
            event_id=f"e{day}-{i}",
            unit_id=f"c{i}",
            event_name="purchase",
            value=1.0,
            occurred_at=now - timedelta(days=day, hours=1),
        )
        for day in range(8)
        for i in range(100 if day == 0 else 1000)
    ]
    table = to_arrow(events, MetricEvent)
    loaded = pa.array([now - timedelta(hours=3)] * len(events), pa.timestamp("ms", tz="UTC"))
    warehouse.insert_arrow("xp.events", table.append_column("ingested_at", loaded))
    # a burst of dead letters: 2000 invalid records in the window
    dead = [
        DeadLetter(
            dead_letter_id=f"d{i}",
            reason=DeadLetterReason.INVALID_JSON,
            detail="truncated",
            record_kind=RecordKind.EXPOSURE,
            source_topic="xp.exposures",
            original=b"{",
            received_at=now - timedelta(minutes=30),
        )
        for i in range(2000)
    ]
    warehouse.insert_arrow("xp.dead_letters", to_arrow(dead, DeadLetter))


def consume_alerts(settings: KafkaSettings, expected: int) -> list[dict[str, object]]:
    consumer = make_consumer(settings, f"quality-test-{settings.topic_prefix}")
    consumer.subscribe([settings.topic(ALERTS)])
    found: list[dict[str, object]] = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(json.loads(message.value()))
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return found


def test_seeded_problems_are_each_caught(
    warehouse: Warehouse, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    seed(warehouse, now)
    settings = QualitySettings(
        home=tmp_path / "xp-home",
        kafka_bootstrap=kafka_settings.kafka_bootstrap,
        topic_prefix=kafka_settings.topic_prefix,
        quality_report_dir=tmp_path / "reports",
    )

    run = run_quality(settings, warehouse=warehouse, registry=REGISTRY)

    failed = {(o.check, o.experiment or o.table) for o in run.failures}
    assert failed == {
        ("srm", "srm-exp"),
        ("dead_letter_rate", "dead_letters"),
        ("freshness", "events"),
        ("unique_ids", "exposures"),
        ("volume", "events"),
    }, run.summary()
    found = {(o.check, o.experiment or o.table): o for o in run.outcomes if o.check != "nulls"}
    srm = found["srm", "srm-exp"]
    assert srm.observed["p_value"] < 1e-6 and srm.observed["units"] == [10000, 9200]
    assert "treatment 9200 (expected 9600)" in srm.detail
    dead = found["dead_letter_rate", "dead_letters"]
    assert dead.observed["dead_letters"] == 2000 and "invalid_json 2000" in dead.detail
    assert "3.0 h ago" in found["freshness", "events"].detail
    assert found["freshness", "exposures"].success
    # rollups and results were never computed, but their input is only 3 h old: not due yet (26 h limit)
    for table in ("unit_metrics", "daily_metrics", "results"):
        assert found["freshness", table].success and "not due yet" in found["freshness", table].detail
    assert "volume drop: 100 rows vs a trailing average of 1000" in found["volume", "events"].detail
    assert found["volume", "exposures"].success  # no history yet: not judged
    duplicates = found["unique_ids", "exposures"]
    assert duplicates.observed["unexpected_count"] == 6 and DUPLICATED in duplicates.detail
    assert all(o.success for o in run.outcomes if o.experiment == "srm-exp" and o.check != "srm")

    stored = warehouse.query_arrow(
        "SELECT count() AS n, countIf(NOT success) AS failed FROM xp.dq_results WHERE run_id = {r:String}",
        {"r": run.run_id},
    ).to_pylist()[0]
    assert (stored["n"], stored["failed"]) == (len(run.outcomes), len(run.failures))
    alerts = warehouse.query_arrow(
        "SELECT fingerprint, state FROM xp.alerts ORDER BY fingerprint"
    ).to_pylist()
    assert {a["fingerprint"] for a in alerts} == {o.fingerprint for o in run.failures}
    assert {a["state"] for a in alerts} == {"firing"}
    assert run.delivery.topic_error is None
    produced = consume_alerts(kafka_settings, len(alerts))
    assert sorted(r["fingerprint"] for r in produced) == sorted(a["fingerprint"] for a in alerts)
    assert next(r for r in produced if r["check"] == "srm")["experiment"] == "srm-exp"

    assert run.report_path == tmp_path / "reports" / "latest" / "index.html"
    html = run.report_path.read_text()
    assert "SAMPLE RATIO MISMATCH" in html and "5 checks failed" in html
    assert run.docs_path is not None and run.docs_path.exists()


def test_replayed_dead_letters_no_longer_count_as_dead(warehouse: Warehouse, tmp_path: Path) -> None:
    import pyarrow as pa

    now = datetime.now(UTC)
    seed(warehouse, now)
    settings = QualitySettings(home=tmp_path / "xp-home", quality_report_dir=tmp_path / "reports")
    replayed = [f"d{i}" for i in range(1500)]  # xp stream replay-dead-letters marks what it produced
    marks = pa.table(
        {
            "dead_letter_id": replayed,
            "replay_id": ["r1"] * len(replayed),
            "source_topic": ["xp.exposures"] * len(replayed),
            "reason": ["invalid_json"] * len(replayed),
            "outcome": ["produced"] * len(replayed),
            "replayed_at": pa.array([now] * len(replayed), pa.timestamp("ms", tz="UTC")),
        }
    )
    warehouse.insert_arrow("xp.dead_letter_replays", marks)
    run = run_quality(settings, warehouse=warehouse, registry=REGISTRY)
    dead = next(o for o in run.outcomes if o.check == "dead_letter_rate")
    assert dead.observed["dead_letters"] == 500 and "invalid_json 500" in dead.detail
