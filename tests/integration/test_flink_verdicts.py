"""The Flink job's validation verdicts (pipelines/flink/verdict_sql.py) against the kernel's, one by one.

One JVM (batch mode, no Kafka): a few hundred hostile and ordinary exposures and events, each a mutation
of a valid record (every field absent, null, of every JSON type, empty, too long, out of range, bad times,
bad UTF-8, trailing JSON, duplicate keys…), go through the job's own ``*_checked`` view; each verdict the
job decides must be the reason the kernel gives (``validate_exposures`` / ``validate_events``), ``ok``
exactly when the kernel keeps the record. Undecided is allowed, and counted: most records must be decided
(about 70 % of these mutations are; in ordinary traffic nearly all, see test_stream_flink.py).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.flink.job_sql import FlinkJobSpec, job_statements
from pipelines.flink.settings import FlinkSettings
from pipelines.flink.verdict_sql import DECIDED_REASONS, OK, UNDECIDED
from pipelines.kernel import RawRecord, ValidationRules, validate_events, validate_exposures
from schemas import DeadLetterReason, Exposure, MetricEvent
from schemas.codec import RecordCodec

pytestmark = [pytest.mark.integration, pytest.mark.flink, pytest.mark.timeout(600)]

_DEFAULTS = FlinkSettings()
if not _DEFAULTS.python.exists():
    pytestmark.append(pytest.mark.skip(reason="no .venv-flink: run `make flink`"))

KAFKA_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NOW = datetime.fromtimestamp(KAFKA_MS / 1000, UTC)
MAX_BYTES = 2000
MAX_ABS = 1e6
RULES = ValidationRules(
    max_future_skew=timedelta(seconds=300),
    max_lateness=timedelta(days=7),
    known_event_names=frozenset({"purchase", "pageview"}),
    known_variations={"exp-a": frozenset({0, 1}), "exp-b": frozenset({0, 1, 2})},
)

EXPOSURE = {
    "exposure_id": "e1",
    "unit_id": "u1",
    "hash_attribute": "id",
    "experiment_key": "exp-a",
    "variation_id": 1,
    "variation_key": "1",
    "feature_key": "f",
    "bucket": 0.25,
    "overridden": False,
    "source": "sdk",
    "attributes": {"country": "fr", "q": 'say "hi"'},
    "user_agent": "ua",
    "exposed_at": "2025-12-31T23:59:00.123Z",
    "sent_at": "2025-12-31T23:59:01Z",
    "schema_version": 1,
}
EVENT = {
    "event_id": "v1",
    "unit_id": "u1",
    "event_name": "purchase",
    "value": 12.5,
    "properties": {"sku": "a"},
    "occurred_at": "2025-12-31T23:59:30Z",
    "sent_at": None,
    "schema_version": 1,
}
ABSENT = object()
BY_KIND: dict[str, list[Any]] = {
    "str": [ABSENT, None, "", "é😀", "x" * 300, 5, True, {}],
    "int": [ABSENT, None, 0, 2, -1, 70000, 1.5, "1", True],
    "float": [ABSENT, None, 1, -0.5, 1.5, "x", False],
    "bool": [ABSENT, None, True, 1, "true"],
    "enum": [ABSENT, None, "loadgen", "bogus", "timestamp-ish", 3],
    "map": [ABSENT, None, {}, {"a": 1}, {"a": None}, [], "x", {"long": 'a"\\' * 400, "b": "c"}],
    "metric": [ABSENT, None, -999999.5, 1e7, "x", True],
    "time": [
        ABSENT, None, 5, "2025-12-31T23:59:00", "2025-12-31T23:59:00+01:00", "2025-02-30T00:00:00Z",
        "1899-12-31T23:59:59Z", "2026-01-01T00:05:00.500Z", "2026-01-01T00:04:59Z", "2026-01-01T00:06:00Z",
        "2025-12-24T23:59:00Z", "2025-12-25T00:01:00Z",
    ],
}  # fmt: skip
KIND_OF = {
    "variation_id": "int", "schema_version": "int", "bucket": "float", "overridden": "bool", "source": "enum",
    "attributes": "map", "properties": "map", "value": "metric", "exposed_at": "time", "occurred_at": "time",
    "sent_at": "time",
}  # fmt: skip
EXTRA: dict[str, list[Any]] = {
    "experiment_key": ["exp-b", "exp-z"],
    "variation_id": [1],
    "event_name": ["pageview", "signup"],
    "user_agent": ["", "x" * 1025],
    "exposure_id": ["x" * 129],
}
RAW_CASES = [  # (an empty record is a file without a line: the job's `invalid_json` is unit-tested)
    b"\xff\xfe not utf-8",
    b'{"exposure_id": "trunc',
    b"null",
    b"[]",
    b"{}",
    b"x" * 3000,
    b'{"a": NaN}',
]


def mutations(base: dict[str, Any]) -> list[bytes]:
    out = [json.dumps(base).encode()]
    for name in base:
        for value in BY_KIND[KIND_OF.get(name, "str")] + EXTRA.get(name, []):
            record = dict(base)
            if value is ABSENT:
                del record[name]
            else:
                record[name] = value
            out.append(json.dumps(record, ensure_ascii=False).encode())
    document = json.dumps(base)
    out.append((document + " " + document).encode())  # two values: msgspec refuses trailing data
    out.append(document.replace("{", '{"unit_id": 5, ', 1).encode())  # duplicate key, first one bad
    out.append(document.replace('"u1"', '"u\\ud800"').encode())  # a lone surrogate
    out.append(json.dumps({**base, "extra": {"unit_id": None, "nested": [1, {"a": None}]}}).encode())
    return out + RAW_CASES


def kernel_verdicts(kind: str, values: list[bytes]) -> list[str]:
    record_type = Exposure if kind == "exposure" else MetricEvent
    codec: RecordCodec[Any] = RecordCodec(
        record_type, max_record_bytes=MAX_BYTES, max_abs_metric_value=MAX_ABS
    )
    raws = [RawRecord(kind, 0, offset, b"u1", value, KAFKA_MS) for offset, value in enumerate(values)]
    validate = validate_exposures if kind == "exposure" else validate_events
    result = validate(codec, raws, RULES, NOW)  # type: ignore[arg-type]
    verdicts = [OK] * len(values)
    for letter in result.errs:
        assert letter.source_offset is not None
        verdicts[letter.source_offset] = DeadLetterReason(letter.reason).value
    return verdicts


JOB = """
import json, sys
from pyflink.table import EnvironmentSettings, TableEnvironment
spec = json.load(open(sys.argv[1]))
env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
env.get_config().set("table.local-time-zone", "UTC")
env.get_config().set("parallelism.default", "1")
for statement in spec["statements"]:
    env.execute_sql(statement)
env.execute_sql(spec["insert"]).wait()
"""


def _source_view(name: str, kind: str) -> str:
    """The records of ``kind`` from the files of the ``records`` table: one file per record, named
    ``<kind>-<offset>`` (Flink's raw format keeps the bytes as they are; VALUES of a few hundred rows
    would take Flink minutes to compile)."""
    return f"""CREATE TEMPORARY VIEW {name} AS
SELECT CAST(NULL AS BYTES) AS k, v, 0 AS src_partition,
  CAST(SUBSTRING(fname FROM {len(kind) + 2}) AS BIGINT) AS src_offset,
  TO_TIMESTAMP_LTZ({KAFKA_MS}, 3) AS src_ts, CURRENT_TIMESTAMP AS pt
FROM records WHERE fname LIKE '{kind}-%'"""  # nosec B608 - test constants


def job_verdicts(tmp_path: Path, exposures: list[bytes], events: list[bytes]) -> dict[str, list[str]]:
    spec = FlinkJobSpec(
        exposures_topic="x.exposures",
        events_topic="x.events",
        exposures_handoff="x.h1",
        events_handoff="x.h2",
        kafka_properties={"bootstrap.servers": "127.0.0.1:1"},
        group_id="g",
        transactional_id_prefix="t-",
        max_future_skew_seconds=300,
        max_lateness_seconds=7 * 86400,
        dedup_retention_seconds=60,
        max_record_bytes=MAX_BYTES,
        max_abs_metric_value=MAX_ABS,
        known_variations=RULES.known_variations,
        known_event_names=RULES.known_event_names,
    )
    ddl, _ = job_statements(spec)
    views = [statement for statement in ddl if "_checked AS" in statement]
    out, files = tmp_path / "verdicts", tmp_path / "records"
    files.mkdir()
    for kind, values in (("exposure", exposures), ("event", events)):
        for offset, value in enumerate(values):
            (files / f"{kind}-{offset}").write_bytes(value)
    statements = [
        f"""CREATE TEMPORARY TABLE records (v BYTES, fname STRING METADATA FROM 'file.name' VIRTUAL)
WITH ('connector' = 'filesystem', 'path' = '{files.as_uri()}', 'format' = 'raw')""",
        _source_view("exposures_in", "exposure"),
        _source_view("events_in", "event"),
        *views,
        f"""CREATE TEMPORARY TABLE verdicts (kind STRING, o BIGINT, verdict STRING) WITH (
  'connector' = 'filesystem', 'path' = '{out.as_uri()}', 'format' = 'csv')""",
    ]
    insert = """INSERT INTO verdicts
SELECT 'exposure', src_offset, verdict FROM exposures_in_checked
UNION ALL SELECT 'event', src_offset, verdict FROM events_in_checked"""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"statements": statements, "insert": insert}))
    script = tmp_path / "job.py"
    script.write_text(JOB)
    result = subprocess.run(
        [str(_DEFAULTS.python), str(script), str(spec_path)], capture_output=True, text=True, timeout=500
    )
    assert result.returncode == 0, result.stderr[-4000:]
    found: dict[str, list[str]] = {"exposure": [""] * len(exposures), "event": [""] * len(events)}
    for part in out.rglob("*"):
        if part.is_file() and not part.name.startswith("."):
            for line in part.read_text().splitlines():
                kind, offset, verdict = line.split(",")
                found[kind][int(offset)] = verdict
    return found


def test_every_verdict_the_job_decides_is_the_kernels(tmp_path: Path) -> None:
    records = {"exposure": mutations(EXPOSURE), "event": mutations(EVENT)}
    by_job = job_verdicts(tmp_path, records["exposure"], records["event"])
    decided: dict[str, int] = {}
    for kind, values in records.items():
        expected = kernel_verdicts(kind, values)
        for value, job, kernel in zip(values, by_job[kind], expected, strict=True):
            assert job in DECIDED_REASONS | {OK, UNDECIDED}, (kind, value, job)
            if job != UNDECIDED:
                assert job == kernel, (kind, value, job, kernel)
                decided[job] = decided.get(job, 0) + 1
    total = sum(map(len, records.values()))
    # every code the job can give was given (and agreed) at least once (but `invalid_json`, which it
    # gives to an empty record only: a file cannot hold one), and most records were decided
    assert set(decided) == DECIDED_REASONS - {"invalid_json"} | {OK}, decided
    assert sum(decided.values()) >= 0.65 * total, (decided, total)
