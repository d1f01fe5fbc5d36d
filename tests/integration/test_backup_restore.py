"""`xp backup` → `xp restore` into a fresh XP_HOME (and fresh topics) gives the same results.

1. Round trip: hand-made exposures and attributed events (tests/integration/test_results.py's data), a lake
   built by the lake job, the example experiments published to the registry topic; results computed;
   backup; restore into another home and another topic prefix; the results, the derived counters, the
   lake's bytes and the (signature-verified) registry records are the same.
2. A non-empty warehouse is refused unless --force (the CLI, one line, exit 2); with --force it is replaced.
3. Hostile input: a changed byte, a truncated file, a missing manifest, a manifest pointing outside the
   backup are each refused before anything is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.authoring import load_registry_file
from assignment.registry_changes import plan_changes
from assignment.registry_topic import publish_changes, read_registry, read_registry_records
from jobs.lake import run_lake
from jobs.results.compute import compute_experiment_result
from tests.fixtures.floats import same_within_float_noise
from tests.fixtures.kafka import KafkaBroker
from tests.integration.test_results import BASE, HandMade, experiment_spec, load
from xpcore.config import KafkaSettings
from xpcore.config.jobs import LakeSettings
from xpcore.kafka.admin import admin_client
from xpcore.kafka.topics import topic_specs
from xpcore.warehouse import Warehouse, open_warehouse
from xpstream.backup import create_backup, restore_backup

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "experiments.yaml"
UNTIL = BASE + timedelta(days=1)
COMPUTED_AT = BASE + timedelta(days=1, hours=1)
SPEC = experiment_spec("exp", 3)


def settings_for(home: Path, kafka: KafkaSettings | None = None) -> LakeSettings:
    values: dict[str, Any] = kafka.model_dump() if kafka is not None else {}
    return LakeSettings(**(values | {"home": home, "clickhouse_url": None, "store_wait_seconds": 0}))


def results_and_counters(settings: LakeSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    warehouse = open_warehouse(settings)
    try:
        result = compute_experiment_result(warehouse, SPEC, until=UNTIL, computed_at=COMPUTED_AT)
        counters = warehouse.query_arrow(
            "SELECT (SELECT count() FROM xp.exposures FINAL) AS exposures, "
            "(SELECT count() FROM xp.attributed_events FINAL) AS attributed, "
            "(SELECT sum(exposures) FROM xp.exposure_counts_minute) AS counted_exposures, "
            "(SELECT uniqExactMerge(units) FROM xp.exposure_counts_minute) AS counted_units, "
            "(SELECT sum(event_count) FROM xp.unit_metric_state) AS unit_metric_events, "
            "(SELECT sum(records) FROM xp.ingest_counts_minute) AS ingested"
        ).to_pylist()[0]
    finally:
        warehouse.close()
    return result.to_json(), counters


def lake_files(home: Path) -> dict[str, bytes]:
    lake = home / "lake"
    return {p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


def seed_warehouse_and_lake(settings: LakeSettings) -> None:
    warehouse: Warehouse = open_warehouse(settings)
    try:
        load(warehouse, HandMade(seed=11, units=300))
        run_lake(settings, since=None, until=None, warehouse=warehouse)
    finally:
        warehouse.close()


def test_round_trip_into_a_fresh_home_gives_the_same_results(
    kafka_settings: KafkaSettings, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    source = settings_for(tmp_path / "home-a", kafka_settings)
    seed_warehouse_and_lake(source)
    authored = load_registry_file(EXAMPLE)
    publish_changes(
        kafka_settings,
        plan_changes(read_registry(kafka_settings), authored, actor="t", now=datetime.now(UTC)),
    )
    before, counters_before = results_and_counters(source)
    registry_before = read_registry_records(kafka_settings)
    assert registry_before and counters_before["exposures"] > 300 and lake_files(tmp_path / "home-a")

    manifest = create_backup(source, tmp_path / "backup")

    assert manifest.tables["xp.exposures"] == counters_before["exposures"]
    assert "xp.unit_exposures" in manifest.derived_tables
    assert manifest.registry_records == len(registry_before)

    restored_kafka = kafka_broker.settings(topic_prefix=f"{kafka_settings.topic_prefix}restored-")
    target = settings_for(tmp_path / "home-b", restored_kafka)
    try:
        report = restore_backup(target, tmp_path / "backup")
        after, counters_after = results_and_counters(target)
        registry_after = read_registry_records(restored_kafka)
    finally:
        admin_client(restored_kafka).delete_topics(list(topic_specs(restored_kafka)), operation_timeout=10)

    assert report.tables == manifest.tables
    # the same numbers up to the last bits of float sums: their order depends on the parts, which a restore
    # writes anew, and on how the unit values were built (folded increments, decision 0099, or one pass)
    assert after.keys() == before.keys() and same_within_float_noise(after, before), (after, before)
    assert counters_after == counters_before
    assert lake_files(tmp_path / "home-b") == lake_files(tmp_path / "home-a")
    # read back through signature verification: the records were kept byte for byte
    assert registry_after == registry_before
    assert (
        read_registry(restored_kafka).experiments.keys() == read_registry(kafka_settings).experiments.keys()
    )


def xp(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XP_HOME": str(home)}
    env.pop("XP_CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=180, env=env
    )


@pytest.fixture
def local_backup(tmp_path: Path) -> Path:
    """A warehouse + lake backup (no registry) of a seeded home."""
    seed_warehouse_and_lake(settings_for(tmp_path / "home-a"))
    made = xp(
        tmp_path / "home-a", "backup", str(tmp_path / "backup"), "--skip", "registry", "--format", "json"
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["registry_records"] is None
    return tmp_path / "backup"


def test_a_non_empty_warehouse_is_refused_unless_force(local_backup: Path, tmp_path: Path) -> None:
    home = tmp_path / "home-b"
    first = xp(home, "restore", str(local_backup), "--format", "json")
    assert first.returncode == 0, first.stderr
    rows = sum(json.loads(first.stdout)["tables"].values())

    again = xp(home, "restore", str(local_backup))
    assert again.returncode == 2
    assert again.stderr.startswith("error: the warehouse at ") and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    forced = xp(home, "restore", str(local_backup), "--force", "--format", "json")
    assert forced.returncode == 0, forced.stderr
    assert sum(json.loads(forced.stdout)["tables"].values()) == rows
    counted = xp(home, "sql", "SELECT count() AS n FROM xp.exposures", "--format", "json")
    manifest = json.loads((local_backup / "manifest.json").read_text())
    # replaced, not doubled (and not swallowed by the dedup window of the first restore)
    assert json.loads(counted.stdout)[0]["n"] == manifest["tables"]["xp.exposures"]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _drop_manifest(root: Path) -> None:
    (root / "manifest.json").unlink()


def _escape(root: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: _flip_a_byte(root / "warehouse" / "exposures.arrow"), "does not match its SHA-256"),
        (lambda root: _truncate(root / "warehouse" / "attributed_events.arrow"), "truncated or changed"),
        (_drop_manifest, "no manifest.json"),
        (_escape, "points outside the backup"),
    ],
    ids=["changed-byte", "truncated", "no-manifest", "path-escape"],
)
def test_a_damaged_backup_is_refused_before_anything_is_written(
    local_backup: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    damage(local_backup)
    home = tmp_path / "home-c"
    refused = xp(home, "restore", str(local_backup))
    assert refused.returncode == 2
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert not (home / "warehouse").exists() and not (home / "lake").exists()
