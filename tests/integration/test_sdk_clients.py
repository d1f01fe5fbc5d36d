"""The real client libraries against a started service (uvicorn on a loopback port):

- OpenFeature: ``openfeature-sdk`` with ``openfeature-provider-ofrep`` (PyPI);
- GrowthBook remote evaluation: the Python SDK (``growthbook``) and the JavaScript SDK
  (``@growthbook/growthbook`` from npm, driven by Node: tests/js);
- streaming: a change published to the real registry topic reaches SDKs connected to
  ``GET /sub/{client_key}`` (JavaScript and Python, local and remote evaluation).

Each resolves, for many units, the values ``xp assign eval`` gives for the same payload and units, and
the service records the exposures of exactly the units ``xp assign eval`` puts in an experiment; through
Kafka and the stream worker they arrive in ClickHouse (chDB), each once.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from growthbook import GrowthBook
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from assignment.service.app import Service, build_app
from assignment.service.auth import KeyRing
from assignment.service.exposures import MemorySink
from assignment.service.sources import RegistryPayloadSource, StaticPayloadSource
from schemas import (
    FeatureDefinition,
    FeatureStatus,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    registry_key,
)
from tests.fixtures.http import serve_in_thread
from tests.fixtures.waiting import wait_until
from tests.js_support import JS_DIR, require_node, run_node_json
from xpcore.config import KafkaSettings

pytestmark = pytest.mark.integration

CLIENT_KEY = "ck_sdk"
PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout": {
            "defaultValue": "control",
            "rules": [
                {"id": "qa", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": "qa"},
                {
                    "key": "checkout-exp",
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "condition": {"country": {"$in": ["US", "CA"]}},
                    "coverage": 0.8,
                    "variations": ["control", "one-page"],
                    "weights": [0.5, 0.5],
                    "meta": [{"key": "control"}, {"key": "one-page"}],
                },
            ],
        },
        "pricing": {
            "defaultValue": 10,
            "rules": [
                {
                    "key": "pricing-exp",
                    "hashAttribute": "device_id",
                    "variations": [10, 12, 15],
                    "meta": [{"key": "low"}, {"key": "mid"}, {"key": "high"}],
                }
            ],
        },
        "banner": {"defaultValue": False, "rules": [{"force": True, "coverage": 0.5, "hashAttribute": "id"}]},
        "beta": {
            "defaultValue": "off",
            "rules": [{"condition": {"version": {"$vlt": "2.0.0-beta"}}, "force": "on"}],
        },
    },
    "savedGroups": {},
}
FEATURES = list(PAYLOAD["features"])
COUNTRIES = ["US", "CA", "FR", "US", "DE"]


def _units(count: int) -> list[dict[str, Any]]:
    """Units whose id is also their device id (the OFREP targeting key fills both hash attributes)."""
    units = []
    for i in range(count):
        unit: dict[str, Any] = {"id": f"u{i}", "device_id": f"u{i}", "country": COUNTRIES[i % len(COUNTRIES)]}
        if i % 7 == 0:
            unit["email"] = f"user{i}@example.com"
        if i % 3 == 0:
            unit["version"] = "2.1.0" if i % 2 else "1.4.2"
        units.append(unit)
    return units


def xp_assign_eval(tmp_path: Path, units: list[dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """Per unit, feature key → the row ``xp assign eval --format json`` prints (the real CLI)."""
    features = tmp_path / "payload.json"
    features.write_text(json.dumps(PAYLOAD), encoding="utf-8")
    jsonl = tmp_path / "units.jsonl"
    jsonl.write_text("\n".join(json.dumps(u) for u in units) + "\n", encoding="utf-8")
    per_unit: list[dict[str, dict[str, Any]]] = [{} for _ in units]
    for key in FEATURES:
        result = subprocess.run(
            [sys.executable, "-m", "xpstream.cli", "assign", "eval", "--features", str(features),
             "--key", key, "--attributes-file", str(jsonl), "--format", "json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(rows) == len(units)
        for index, row in enumerate(rows):
            per_unit[index][key] = row
    return per_unit


def expected_exposures(
    rows: list[dict[str, dict[str, Any]]], units: list[dict[str, Any]]
) -> set[tuple[str, ...]]:
    out = set()
    for unit, by_feature in zip(units, rows, strict=True):
        for row in by_feature.values():
            if row["in_experiment"] and row["hash_used"]:
                hashed = unit[row["hash_attribute"]]
                out.add((hashed, row["experiment_key"], str(row["variation_id"])))
    return out


def recorded_exposures(sink: MemorySink) -> set[tuple[str, ...]]:
    out = set()
    for topic, _, value in sink.records:
        assert topic.endswith("exposures"), topic
        record = json.loads(value)
        out.add((record["unit_id"], record["experiment_key"], str(record["variation_id"])))
    return out


def _track(tracked: list[tuple[str, int]], experiment: Any, result: Any, **_: Any) -> None:
    tracked.append((experiment.key, result.variationId))


def _static_service(sink: MemorySink) -> Service:
    return Service(source=StaticPayloadSource(PAYLOAD), sink=sink, keys=KeyRing(client_keys=(CLIENT_KEY,)))


# OpenFeature ------------------------------------------------------------------------------------


def test_openfeature_ofrep_provider_resolves_what_xp_assign_eval_gives(tmp_path: Path) -> None:
    units = _units(150)
    rows = xp_assign_eval(tmp_path, units)
    sink = MemorySink()
    with serve_in_thread(build_app(_static_service(sink))) as url:
        api.set_provider(
            OFREPProvider(url, headers_factory=lambda: {"Authorization": f"Bearer {CLIENT_KEY}"})
        )
        client = api.get_client()
        reasons = set()
        for unit, expected in zip(units, rows, strict=True):
            attributes = {k: v for k, v in unit.items() if k not in ("id", "device_id")}
            context = EvaluationContext(targeting_key=unit["id"], attributes=attributes)
            details = {
                "checkout": client.get_string_details("checkout", "fallback", context),
                "pricing": client.get_integer_details("pricing", -1, context),
                "banner": client.get_boolean_details("banner", None, context),  # type: ignore[arg-type]
                "beta": client.get_string_details("beta", "fallback", context),
            }
            for key, detail in details.items():
                assert detail.error_code is None, (key, unit, detail.error_message)
                assert detail.value == expected[key]["value"], (key, unit)
                reasons.add(detail.reason)
                if expected[key]["in_experiment"]:
                    assert detail.variant == expected[key]["variation_key"]
                    assert detail.flag_metadata["experiment_key"] == expected[key]["experiment_key"]
        assert {"SPLIT", "TARGETING_MATCH", "DEFAULT"} <= reasons
        missing = client.get_string_details("no-such-flag", "fallback", EvaluationContext(targeting_key="u1"))
        assert missing.value == "fallback" and missing.error_code is not None
        assert missing.error_code.value == "FLAG_NOT_FOUND"
        unauthorized = OFREPProvider(url, headers_factory=lambda: {"Authorization": "Bearer wrong"})
        api.set_provider(unauthorized, domain="wrong-key")
        refused = api.get_client("wrong-key").get_string_details(
            "checkout", "fallback", EvaluationContext("u1")
        )
        assert refused.value == "fallback" and refused.error_code is not None
    assert recorded_exposures(sink) == expected_exposures(rows, units)


# GrowthBook remote evaluation -------------------------------------------------------------------


def test_growthbook_python_sdk_remote_eval_matches_xp_assign_eval(tmp_path: Path) -> None:
    units = _units(80)
    rows = xp_assign_eval(tmp_path, units)
    sink = MemorySink()
    with serve_in_thread(build_app(_static_service(sink))) as url:
        for unit, expected in zip(units, rows, strict=True):
            tracked: list[tuple[str, int]] = []
            gb = GrowthBook(
                api_host=url,
                client_key=CLIENT_KEY,
                attributes=dict(unit),  # the SDK may change the dict it is given
                remote_eval=True,
                cache_key_attributes=["id", "device_id", "country", "email", "version"],
                on_experiment_viewed=functools.partial(_track, tracked),
            )
            try:
                for key in FEATURES:
                    assert gb.get_feature_value(key, None) == expected[key]["value"], (key, unit)
                in_experiment = {
                    (row["experiment_key"], row["variation_id"])
                    for row in expected.values()
                    if row["in_experiment"]
                }
                assert set(tracked) == in_experiment
            finally:
                gb.destroy()
    assert recorded_exposures(sink) == expected_exposures(rows, units)


@pytest.mark.parametrize("mode", ["remote", "local"])
def test_growthbook_javascript_sdk_matches_xp_assign_eval(tmp_path: Path, mode: str) -> None:
    require_node()
    units = _units(60)
    rows = xp_assign_eval(tmp_path, units)
    sink = MemorySink()
    with serve_in_thread(build_app(_static_service(sink))) as url:
        answers = run_node_json(
            "growthbook_eval.js", url, CLIENT_KEY, mode, json.dumps(units), json.dumps(FEATURES), timeout=180
        )
    assert len(answers) == len(units)
    for unit, expected, answer in zip(units, rows, answers, strict=True):
        assert answer["values"] == {key: expected[key]["value"] for key in FEATURES}, unit
        in_experiment = {
            (row["experiment_key"], row["variation_id"]) for row in expected.values() if row["in_experiment"]
        }
        assert {tuple(t) for t in answer["tracked"]} == in_experiment, unit
    if mode == "remote":  # the service assigned, so it recorded the exposures
        assert recorded_exposures(sink) == expected_exposures(rows, units)
    else:  # the SDK assigned locally from /api/features: the service assigned nothing
        assert not sink.records


# exposures in ClickHouse ------------------------------------------------------------------------


def test_exposures_of_sdk_assignments_arrive_in_clickhouse(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """OFREP, Python and JavaScript remote evaluation through a Kafka sink, the stream worker
    (`xp stream run`) into chDB: xp.exposures holds exactly the units × experiments × variations
    `xp assign eval` puts in an experiment, each once."""
    from assignment.service.exposures import KafkaSink
    from xpcore.config import ServiceSettings, WarehouseSettings
    from xpcore.warehouse import open_warehouse

    units = _units(90)
    rows = xp_assign_eval(tmp_path, units)
    home = tmp_path / "home"
    settings = ServiceSettings(
        home=home, kafka_bootstrap=kafka_settings.kafka_bootstrap, topic_prefix=kafka_settings.topic_prefix
    )
    service = Service(
        source=StaticPayloadSource(PAYLOAD), sink=KafkaSink(settings), keys=KeyRing(client_keys=(CLIENT_KEY,))
    )
    with serve_in_thread(build_app(service)) as url:
        api.set_provider(OFREPProvider(url, headers_factory=lambda: {"X-API-Key": CLIENT_KEY}), domain="ch")
        client = api.get_client("ch")
        for unit in units[:40]:
            attributes = {k: v for k, v in unit.items() if k not in ("id", "device_id")}
            context = EvaluationContext(targeting_key=unit["id"], attributes=attributes)
            client.get_string_value("checkout", "fallback", context)
            client.get_integer_value("pricing", -1, context)
        for unit in units[40:60]:
            gb = GrowthBook(api_host=url, client_key=CLIENT_KEY, attributes=dict(unit), remote_eval=True)
            gb.destroy()
        if units[60:]:
            require_node()
            run_node_json(
                "growthbook_eval.js", url, CLIENT_KEY, "remote", json.dumps(units[60:]), json.dumps(FEATURES)
            )
    expected = expected_exposures(rows, units)
    registry = {
        "experiments": {
            "checkout-exp": {"variations": [{"id": 0, "key": "control"}, {"id": 1, "key": "one-page"}]},
            "pricing-exp": {
                "variations": [{"id": 0, "key": "low"}, {"id": 1, "key": "mid"}, {"id": 2, "key": "high"}]
            },
        }
    }
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry), encoding="utf-8")
    env = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STREAM_REGISTRY_FILE": str(registry_file),
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)
    worker = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "stream", "run", "--until-idle", "3", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-3000:]
    warehouse = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        stored = warehouse.query_arrow(
            "SELECT unit_id, experiment_key, variation_id FROM xp.exposures"
        ).to_pylist()
        dead = warehouse.query_arrow("SELECT reason, detail FROM xp.dead_letters").to_pylist()
    finally:
        warehouse.close()
    assert not dead, dead
    got = [(r["unit_id"], r["experiment_key"], str(r["variation_id"])) for r in stored]
    assert len(got) == len(set(got))  # each once
    assert set(got) == expected and len(expected) > 30


# streaming ------------------------------------------------------------------------------------------


def _banner(version: int, value: str) -> RegistryRecord:
    feature = FeatureDefinition(
        key="banner", version=version, status=FeatureStatus.ACTIVE, definition={"defaultValue": value}
    )
    return RegistryRecord(
        record_id=str(uuid.uuid4()),
        kind=RegistryKind.FEATURE,
        key=registry_key(feature),
        change=RegistryChange.UPDATED,
        changed_by="test",
        changed_at=datetime.now(UTC),
        payload=feature,
    )


@contextmanager
def _node_stream(url: str, mode: str) -> Iterator[list[Any]]:
    """growthbook_stream.js connected to the service; yields the values it has printed so far."""
    node = require_node()
    process = subprocess.Popen(
        [
            node,
            str(JS_DIR / "growthbook_stream.js"),
            url,
            CLIENT_KEY,
            mode,
            json.dumps({"id": "u1"}),
            "banner",
        ],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[Any] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(json.loads(line)["value"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        assert process.stderr is not None
        errors = process.stderr.read()
        assert "Error" not in errors, errors[-2000:]


def test_a_registry_change_reaches_connected_sdks(kafka_settings: KafkaSettings) -> None:
    """JavaScript SDKs with local and with remote evaluation, and the Python SDK with remote evaluation
    (a change makes it re-POST /api/eval). The Python SDK streams once per process: its feature
    repository is a singleton whose stream keeps the first instance's callback, so its local mode,
    which reads the same events, is left to the JavaScript SDK here."""
    from assignment.registry_topic import publish_changes

    publish_changes(kafka_settings, [_banner(1, "v1")])
    service = Service(
        source=RegistryPayloadSource(kafka_settings, start_timeout=30),
        sink=MemorySink(),
        keys=KeyRing(client_keys=(CLIENT_KEY,)),
        stream_heartbeat_seconds=0.5,  # a closed stream is noticed within half a second
    )
    with serve_in_thread(build_app(service)) as url:
        python = GrowthBook(
            api_host=url, client_key=CLIENT_KEY, attributes={"id": "u1"}, streaming=True, remote_eval=True
        )
        try:
            with _node_stream(url, "local") as js_local, _node_stream(url, "remote") as js_remote:
                wait_until(
                    lambda: js_local == ["v1"] and js_remote == ["v1"], timeout=30, message="SDKs to start"
                )
                wait_until(lambda: service.feed.open_streams == 3, timeout=30, message="three open streams")
                assert python.get_feature_value("banner", None) == "v1"
                for version in (2, 3):
                    value = f"v{version}"
                    publish_changes(kafka_settings, [_banner(version, value)])
                    wait_until(
                        lambda: js_local[-1] == value and js_remote[-1] == value,  # noqa: B023
                        timeout=10,
                        message=f"{value} to reach the JavaScript SDKs",
                    )
                    wait_until(
                        lambda: python.get_feature_value("banner", None) == value,  # noqa: B023
                        timeout=10,
                        message=f"{value} to reach the Python SDK",
                    )
                assert js_local == ["v1", "v2", "v3"] and js_remote == ["v1", "v2", "v3"]
        finally:
            python.destroy()
        wait_until(lambda: service.feed.open_streams == 0, timeout=30, message="the streams to close")
