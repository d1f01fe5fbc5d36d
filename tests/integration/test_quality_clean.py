"""Clean loadgen traffic through the real stream passes every quality check (no false alarms).

`xp experiments apply` → `xp loadgen` → `xp stream run` → `xp jobs run etl` / `stats` →
`xp jobs run quality --format json --strict` (subprocesses, real broker, embedded chDB): exit 0 and
every check in the JSON contract succeeds; the outcomes are in xp.dq_results and the report exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quality.registry_source import registry_from_table
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration

EXPERIMENTS = """
experiments:
  - key: clean-exp
    name: Clean experiment
    feature: clean-feature
    status: running
    variations:
      - {key: control, name: Control, weight: 0.5, value: false}
      - {key: treatment, name: Treatment, weight: 0.5, value: true}
    metrics:
      primary: [conversion]
      guardrails: [pageviews]
"""


def xp(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], env=env, capture_output=True, text=True, timeout=240
    )
    if check:
        assert result.returncode == 0, f"xp {' '.join(args)}: {result.stderr}"
    return result


def test_clean_loadgen_traffic_passes_every_check(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(EXPERIMENTS)
    env: dict[str, Any] = {
        **os.environ,
        "XP_HOME": str(tmp_path / "xp-home"),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STORE_WAIT_SECONDS": "10",
    }
    for name in ("XP_CLICKHOUSE_URL", "XP_API_URL", "XP_QUALITY_WEBHOOK_URL", "XP_QUALITY_REGISTRY_FILE"):
        env.pop(name, None)
    xp(env, "experiments", "apply", str(experiments), "--actor", "quality-test")
    report = json.loads(xp(env, "loadgen", "--users", "3000", "--seed", "5", "--format", "json").stdout)
    assert report["exposures"] == 3000
    xp(env, "stream", "run", "--until-idle", "2", "--format", "json")
    xp(env, "jobs", "run", "etl")
    xp(env, "jobs", "run", "stats")

    result = xp(env, "jobs", "run", "quality", "--format", "json", "--strict", check=False)

    document = json.loads(result.stdout)
    failed = [c for c in document["checks"] if not c["success"]]
    assert result.returncode == 0 and document["success"] is True, json.dumps(failed, indent=1)
    checks = {(c["check"], c["experiment"] or c["table"]) for c in document["checks"]}
    for expected in [
        ("srm", "clean-exp"),
        ("guardrails", "clean-exp"),
        ("units_without_events", "clean-exp"),
        ("freshness", "events"),
        ("volume", "exposures"),
        ("dead_letter_rate", "dead_letters"),
        ("unique_ids", "exposures"),
        ("allowed_values", "events"),
        ("schema", "results"),
    ]:
        assert expected in checks
    srm = next(c for c in document["checks"] if c["check"] == "srm")
    assert sum(srm["observed"]["units"]) == 3000
    stored = xp(env, "sql", "SELECT count() AS n FROM xp.dq_results", "--format", "json").stdout
    assert json.loads(stored)[0]["n"] == len(document["checks"])
    assert (tmp_path / "xp-home" / "reports" / "quality" / "latest" / "index.html").exists()

    # with Kafka unreachable, the registry is folded from its audit copy in xp.registry instead
    store = open_warehouse(
        WarehouseSettings(home=tmp_path / "xp-home", clickhouse_url=None, store_wait_seconds=10)
    )
    try:
        snapshot = registry_from_table(store)
    finally:
        store.close()
    assert [e.key for e in snapshot.running_experiments()] == ["clean-exp"]
    assert snapshot.known_variations()["clean-exp"] == frozenset({0, 1})
