"""Hostile records through the real broker and the worker (issue #13): poison metric values, deeply nested
JSON, lz4-compressed giants, and the HTTP collector's rejects reaching ``xp.dead_letters`` exactly once.

Each test produces with confluent-kafka (or POSTs to a running `xp assign serve`), runs
`xp stream run --until-idle` as a subprocess and reads the tables back from chDB.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import TRUNCATED_ORIGINAL_BYTES, MetricEvent, RecordCodec
from tests.fixtures.kafka import free_ports
from tests.fixtures.waiting import wait_until
from tests.integration.test_stream_worker import REGISTRY, produce, run_worker, worker_env
from tests.unit.service.conftest import PAYLOAD
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.kafka import EVENTS
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration

DEAD_LETTER_ROWS = """
SELECT dead_letter_id, reason, detail, source_topic, source_offset,
       CAST(original AS String) AS original, original_size, original_sha256
FROM xp.dead_letters ORDER BY source_topic, source_offset
"""


def _env(kafka: KafkaSettings, tmp_path: Path, **extra: str) -> dict[str, str]:
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(REGISTRY))
    return worker_env(kafka, tmp_path / "home", registry, **extra)


def _rows(home: Path, sql: str) -> list[dict[str, Any]]:
    import pyarrow as pa

    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        table = warehouse.query_arrow(sql)
    finally:
        warehouse.close()
    if "original" in table.column_names:  # bytes as bytes (String comes back as Arrow string)
        index = table.column_names.index("original")
        table = table.set_column(index, "original", table.column("original").cast(pa.binary()))
    return table.to_pylist()


def _event_bytes(event_id: str, value: str) -> bytes:
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    return (
        f'{{"event_id":"{event_id}","unit_id":"u-{event_id}","event_name":"purchase",'
        f'"value":{value},"occurred_at":"{at}"}}'
    ).encode()


POISON = {
    "nan": ("NaN", "value_not_finite"),
    "inf": ("Infinity", "value_not_finite"),
    "overflow": ("1e999", "value_not_finite"),
    "huge": ("1.7e308", "value_out_of_range"),
    "negative": ("-3e15", "value_out_of_range"),
}


def test_poison_values_and_deep_json_reach_the_dead_letter_table_with_reason_and_bytes(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    sends = [(EVENTS, b"k", _event_bytes("fine-1", "19.99")), (EVENTS, b"k", _event_bytes("fine-2", "1e15"))]
    sends += [(EVENTS, b"k", _event_bytes(name, literal)) for name, (literal, _) in POISON.items()]
    deep = b'{"event_id":"deep","x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    sends.append((EVENTS, b"k", deep))
    produce(kafka_settings, sends)
    env = _env(kafka_settings, tmp_path, XP_MAX_RECORD_BYTES="100000")
    report = run_worker(env)
    assert report["events"] == 2 and report["dead_letters"] == len(POISON) + 1, report
    home = tmp_path / "home"
    loaded = _rows(home, "SELECT event_id, value FROM xp.events ORDER BY event_id")
    assert loaded == [{"event_id": "fine-1", "value": 19.99}, {"event_id": "fine-2", "value": 1e15}]
    dead = _rows(home, DEAD_LETTER_ROWS)
    produced = {value: key for key, (_, _, value) in enumerate(sends)}
    expected = [reason for _, reason in POISON.values()] + ["schema_violation"]
    assert [row["reason"] for row in dead] == expected
    for row in dead:
        assert produced[row["original"]] == row["source_offset"]  # the original bytes, as produced
        assert row["original_size"] == len(row["original"])
        assert row["original_sha256"] == hashlib.sha256(row["original"]).hexdigest()
    assert "nested too deeply" in dead[-1]["detail"]
    assert run_worker(env)["dead_letters"] == 0  # a second run adds nothing
    assert len(_rows(home, DEAD_LETTER_ROWS)) == len(dead)


GIANT_BYTES = 10 * 1024 * 1024
GIANTS = 5


def test_lz4_compressed_giants_are_dead_lettered_truncated_with_size_and_hash(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from xpcore.kafka.clients import make_producer

    codec: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
    at = datetime.now(UTC) - timedelta(minutes=1)
    normal = [
        codec.encode(MetricEvent(event_id=f"n{i}", unit_id=f"u{i}", event_name="pageview", occurred_at=at))
        for i in range(200)
    ]
    giants = [
        b'{"event_id":"giant-%d","padding":"' % i + bytes([65 + i]) * GIANT_BYTES + b'"}'
        for i in range(GIANTS)
    ]
    # lz4 shrinks each 10 MB giant far below the broker's 1 MB limit: the broker accepts them.
    producer = make_producer(
        kafka_settings, **{"compression.type": "lz4", "message.max.bytes": 4 * GIANT_BYTES}
    )
    topic = kafka_settings.topic(EVENTS)
    for i, value in enumerate(normal):
        producer.produce(topic, key=b"k%d" % i, value=value)
        if i % 40 == 0:  # 5 giants among 200 records
            producer.produce(topic, key=b"giant", value=giants[i // 40])
        producer.poll(0)
    assert producer.flush(60) == 0
    del producer

    env = _env(kafka_settings, tmp_path, XP_MAX_RECORD_BYTES="1000000")
    report = run_worker(env, until_idle=3)
    assert report["events"] == len(normal) and report["dead_letters"] == GIANTS, report
    home = tmp_path / "home"
    dead = _rows(home, DEAD_LETTER_ROWS)
    assert len(dead) == GIANTS and {row["reason"] for row in dead} == {"too_large"}
    for row, giant in zip(sorted(dead, key=lambda r: r["original"]), giants, strict=True):
        assert row["original"] == giant[:TRUNCATED_ORIGINAL_BYTES]
        assert row["original_size"] == len(giant)
        assert row["original_sha256"] == hashlib.sha256(giant).hexdigest()
    stored = _rows(home, "SELECT sum(length(original)) AS n FROM xp.dead_letters")[0]["n"]
    assert stored == GIANTS * TRUNCATED_ORIGINAL_BYTES
    assert _rows(home, "SELECT count() AS n FROM xp.events")[0]["n"] == len(normal)
    assert run_worker(env)["dead_letters"] == 0


def _serve(kafka: KafkaSettings, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(PAYLOAD))
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "XP_HOME": str(tmp_path / "service-home"),
        "XP_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka.topic_prefix,
        "XP_SERVICE_CLIENT_KEYS": "ck_test",
    }
    command = [sys.executable, "-m", "xpstream.cli", "assign", "serve", "--features", str(payload)]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--no-exposures"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            assert server.poll() is None, server.communicate()[1]
            return False

    wait_until(healthy, timeout=60, interval=0.2, message="the service to start")
    return server, url


def test_collector_rejections_reach_the_dead_letter_table_exactly_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    server, url = _serve(kafka_settings, tmp_path)
    try:
        body = (
            b'{"events": [' + _event_bytes("ok", "5") + b", " + _event_bytes("poison", "NaN") + b", "
            b'{"event_id": "no-unit"}]}'
        )
        request = urllib.request.Request(
            f"{url}/v1/events",
            data=body,
            headers={"Authorization": "Bearer ck_test", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["accepted"] == 1
        assert [e["reason"] for e in answer["errors"]] == ["value_not_finite", "missing_field"]
    finally:
        server.terminate()  # SIGTERM: the sink flushes what it holds
        _, stderr = server.communicate(timeout=60)
        assert server.returncode == 0, stderr[-3000:]

    env = _env(kafka_settings, tmp_path)
    home = tmp_path / "home"
    report = run_worker(env)
    assert report["events"] == 1 and report["dead_letters"] == 2, report
    dead = _rows(home, DEAD_LETTER_ROWS)
    assert sorted(row["reason"] for row in dead) == ["missing_field", "value_not_finite"]
    assert {row["source_topic"] for row in dead} == {"http"}
    poison = next(row for row in dead if row["reason"] == "value_not_finite")
    assert b'"value":NaN' in poison["original"]  # the poison value kept, not turned into null
    again = run_worker(env)  # a restart: state rebuilt from the warehouse, nothing loaded twice
    assert again["dead_letters"] == 0 and again["events"] == 0
    # Another consumer group re-reads every topic from the start: the ids are deduplicated.
    reread = run_worker({**env, "XP_STREAM_GROUP_ID": "xp-stream-reread"})
    assert reread["dead_letter_topic_records"] >= 2 and reread["duplicates"] == 1, reread
    assert reread["dead_letters"] == 0 and reread["events"] == 0
    assert _rows(home, DEAD_LETTER_ROWS) == dead
