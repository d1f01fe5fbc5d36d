"""`xp stream run --runner faust` against the real broker (SASL/SCRAM, ACLs) and chDB.

Equivalence: the same input (clean, re-sent, invalid, late, unknown experiments) read by the Kafka runner
and by the Faust runner, each into its own store under its own consumer group, leaves identical tables
row for row. Faults: two kill -9 of the Faust worker mid-stream, then a run to idle, give exact counts.
The helpers (traffic, expected values, the worker subprocess) are the Kafka runner's
(tests/integration/test_stream_worker.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_stream_worker import (
    REGISTRY,
    _wait_for_commits,
    assert_exact,
    build_traffic,
    produce,
    read_tables,
    run_worker,
    worker_command,
    worker_env,
)
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.warehouse import load_query, open_warehouse

pytestmark = pytest.mark.integration

_VOLATILE = {"ingested_at", "attributed_at", "received_at"}
"""Columns the store or the worker stamps with the load time: the only ones allowed to differ."""
_TABLES = ("xp.exposures", "xp.events", "xp.attributed_events", "xp.dead_letters")
_MERGED = ("stream_unit_exposures", "realtime_metric_stats")
"""Queries over the aggregate tables (their parts depend on the batches; the merged result must not)."""


def _text(value: Any) -> str:
    """A value as text; floats to 9 significant digits (sums of the same values in another order)."""
    return f"{value:.9g}" if isinstance(value, float) else repr(value)


def table_rows(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the stream's tables (load-time columns left out), sorted: comparable across stores."""
    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in _TABLES:
            database, name = table.split(".")
            columns = [
                c
                for c in warehouse.query_arrow(
                    "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                    "ORDER BY position",
                    {"d": database, "t": name},
                )
                .column("name")
                .to_pylist()
                if c not in _VOLATILE
            ]
            # every value as text (bytes that are no UTF-8 included, in hex), column names from the store
            listed = ", ".join(f"hex(toString({c})) AS {c}" for c in columns)
            data = warehouse.query_arrow(f"SELECT {listed} FROM {table}").to_pylist()  # nosec B608
            rows[table] = sorted(tuple(r[c] for c in columns) for r in data)
        for query in _MERGED:
            merged = warehouse.query_arrow(load_query(query)).to_pylist()
            rows[query] = sorted(tuple(sorted((k, _text(v)) for k, v in r.items())) for r in merged)
        return rows
    finally:
        warehouse.close()


def test_faust_and_kafka_runners_leave_identical_tables(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=400, seed=11)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    homes = {runner: tmp_path / f"home-{runner}" for runner in ("kafka", "faust")}
    reports = {}
    for runner, home in homes.items():
        env = worker_env(kafka_settings, home, registry_file, XP_STREAM_GROUP_ID=f"xp-stream-{runner}")
        reports[runner] = run_worker(env, runner=runner)

    for runner in homes:
        assert reports[runner]["consumed"] == len(traffic.sends), runner
        assert_exact(read_tables(homes[runner]), traffic)
    kafka, faust = table_rows(homes["kafka"]), table_rows(homes["faust"])
    for table in (*_TABLES, *_MERGED):
        assert kafka[table], table
        assert faust[table] == kafka[table], table
    for field in ("exposures", "events", "attributed", "dead_letters", "duplicates", "reasons"):
        assert reports["faust"][field] == reports["kafka"][field], field

    # A second Faust run finds nothing new: the offsets were committed after the loads.
    env = worker_env(kafka_settings, homes["faust"], registry_file, XP_STREAM_GROUP_ID="xp-stream-faust")
    assert run_worker(env, until_idle=1, runner="faust")["consumed"] == 0


def test_faust_runner_two_kill_9_mid_stream_then_a_run_to_idle_is_exact(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    traffic = build_traffic(units=6000, seed=12)
    produce(kafka_settings, traffic.sends)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(REGISTRY))
    home = tmp_path / "xp-home"
    env = worker_env(kafka_settings, home, registry_file, XP_STREAM_BATCH_SIZE="300")
    marks = []
    for minimum in (3000, 9000):
        worker = subprocess.Popen(
            worker_command("faust", "--until-idle", "3"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        marks.append(_wait_for_commits(kafka_settings, minimum=minimum, timeout=120))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert worker.returncode == -signal.SIGKILL
    assert marks[-1] < len(traffic.sends), "the kills must land mid-stream"

    report = run_worker(env, runner="faust")
    assert report["restored"]["dedup_ids"] > 0 and report["consumed"] > 0
    assert_exact(read_tables(home), traffic)
