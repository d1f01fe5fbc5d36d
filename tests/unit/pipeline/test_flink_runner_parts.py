"""The Flink runner's pure parts: the job's SQL (quoting, the checks it holds), its Kafka properties and
configuration, the newest checkpoint, and the hand-off record mapped back to its source (hostile headers).

No JVM here: tests/integration/test_stream_flink.py runs the job against the real broker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipelines.flink.job_sql import SHADED_SCRAM, FlinkJobSpec, job_statements, literal
from pipelines.flink.launcher import flink_config, kafka_properties, latest_checkpoint
from pipelines.flink.runner import HandoffError, source_record
from pipelines.flink.settings import FlinkSettings
from pipelines.kernel import RawRecord
from xpcore.errors import ConfigError
from xpcore.kafka.principals import FLINK, WORKER, acl_entries

HOSTILE = "x'); DROP TABLE t; --"


def spec(**changes: object) -> FlinkJobSpec:
    values: dict[str, object] = {
        "exposures_topic": "p.xp.exposures",
        "events_topic": "p.xp.events",
        "exposures_handoff": "p.xp.flink.exposures",
        "events_handoff": "p.xp.flink.events",
        "kafka_properties": {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"},
        "group_id": "xp-stream-flink",
        "transactional_id_prefix": "xp-flink-p.xp-stream-",
        "max_future_skew_seconds": 300,
        "max_lateness_seconds": 7 * 86400,
        "dedup_retention_seconds": 3600,
        "known_variations": {"exp-a": frozenset({0, 1}), HOSTILE: frozenset({2})},
        "known_event_names": frozenset({"purchase", HOSTILE}),
    }
    values.update(changes)
    return FlinkJobSpec(**values)  # type: ignore[arg-type]


def _outside_literals(sql: str) -> str:
    """The SQL text with every '…' literal (doubled quotes inside) removed."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def test_literals_double_quotes_and_refuse_control_characters() -> None:
    assert literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="control character"):
        literal("a\nb")


def test_hostile_registry_keys_and_event_names_stay_inside_literals() -> None:
    ddl, inserts = job_statements(spec())
    for statement in ddl + inserts:
        assert statement.count("'") % 2 == 0
        assert "DROP TABLE" not in _outside_literals(statement)
    joined = "\n".join(ddl)
    assert literal(f"{HOSTILE}/2") in joined
    assert literal(HOSTILE) in joined


def test_the_sink_is_transactional_and_the_source_reads_committed_from_the_group() -> None:
    ddl, inserts = job_statements(spec())
    sinks = [s for s in ddl if "exposures_out" in s or "events_out" in s]
    assert len(sinks) == 2
    for sink in sinks:
        assert "'sink.delivery-guarantee' = 'exactly-once'" in sink
        assert "'sink.transactional-id-prefix' = 'xp-flink-p.xp-stream-" in sink
    sources = [s for s in ddl if "_in (" in s]
    assert len(sources) == 2
    for source in sources:
        assert "'scan.startup.mode' = 'group-offsets'" in source
        assert "'properties.group.id' = 'xp-stream-flink'" in source
    assert len(inserts) == 2
    kept = [s for s in ddl if "_kept AS" in s]
    assert len(kept) == 2
    for view in kept:
        assert "ROW_NUMBER() OVER (PARTITION BY dedup_key ORDER BY pt ASC)" in view
        # what fails a check is keyed by its own offset: it goes through unchanged, for the kernel's verdict
        assert "ELSE 'p|' || CAST(src_partition AS STRING) || '|' || CAST(src_offset AS STRING)" in view
    assert [insert.rsplit("FROM ", 1)[1] for insert in inserts] == ["exposures_in_kept", "events_in_kept"]


def test_without_a_registry_or_catalog_the_job_deduplicates_nothing_of_that_kind() -> None:
    ddl, _inserts = job_statements(spec(known_variations=None, known_event_names=None))
    for view in [s for s in ddl if "_kept AS" in s]:
        assert "CASE WHEN COALESCE(FALSE, FALSE)" in view


def test_time_verdicts_leave_a_margin_around_the_kernel_s_bounds() -> None:
    ddl, _inserts = job_statements(spec(max_future_skew_seconds=300, max_lateness_seconds=7200))
    checked = next(s for s in ddl if "exposures_in_checked AS" in s)
    # 'in' only within the bounds narrowed by 1 s, 'out' only beyond them widened by 1 s
    assert "TIMESTAMPADD(SECOND, 299," in checked and "TIMESTAMPADD(SECOND, -7199," in checked
    assert "TIMESTAMPADD(SECOND, 301," in checked and "TIMESTAMPADD(SECOND, -7201," in checked


def test_the_verdict_codes_are_the_kernel_s_reasons_and_travel_as_a_header() -> None:
    from pipelines.flink.verdict_sql import DECIDED_REASONS, EVENT_FIELDS, EXPOSURE_FIELDS
    from schemas import DeadLetterReason, Exposure, MetricEvent

    assert {reason.value for reason in DeadLetterReason} >= DECIDED_REASONS
    # the job's field lists are the contracts' fields (a field added to a record must be added here)
    assert [f.name for f in EXPOSURE_FIELDS] == list(Exposure.__struct_fields__)
    assert [f.name for f in EVENT_FIELDS] == list(MetricEvent.__struct_fields__)
    ddl, inserts = job_statements(spec())
    for insert in inserts:
        assert "'xp-verdict', CAST(verdict AS BYTES)" in insert
    for view in [s for s in ddl if "_kept AS" in s]:
        assert "WHEN COALESCE(verdict = 'ok', FALSE) THEN 'd|'" in view


def test_the_loader_counts_the_job_s_verdicts_against_the_kernel_s() -> None:
    from collections import Counter
    from types import SimpleNamespace

    from pipelines.flink.runner import compare_verdicts

    letters = [
        SimpleNamespace(source_topic="t", source_partition=0, source_offset=1, reason="unknown_experiment"),
        SimpleNamespace(source_topic="t", source_partition=0, source_offset=2, reason="schema_violation"),
        SimpleNamespace(source_topic="t", source_partition=0, source_offset=3, reason="too_large"),
    ]
    verdicts = {
        ("t", 0, 0): "ok",
        ("t", 0, 1): "unknown_experiment",
        ("t", 0, 2): "missing_field",
        ("t", 0, 3): "ok",
        ("t", 0, 4): "undecided",
        ("t", 0, 5): "unknown_variation",
    }
    counts: Counter[str] = Counter()
    problems = compare_verdicts(verdicts, letters, counts)
    assert counts == {"agree": 2, "disagree": 2, "undecided": 1, "unconfirmed": 1}
    assert problems == [
        "t/0@2: job missing_field, kernel schema_violation",
        "t/0@3: job ok, kernel too_large",
    ]


def test_kafka_properties_use_the_shaded_scram_module_and_refuse_quotes() -> None:
    properties = kafka_properties(
        {
            "bootstrap.servers": "b:9093",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "flink",
            "sasl.password": "s3cret",
            "ssl.ca.location": "/etc/ca.pem",
        }
    )
    assert properties["sasl.jaas.config"] == f'{SHADED_SCRAM} required username="flink" password="s3cret";'
    assert properties["ssl.truststore.type"] == "PEM"
    assert properties["ssl.truststore.location"] == "/etc/ca.pem"
    with pytest.raises(ConfigError, match="quote or backslash"):
        kafka_properties(
            {
                "bootstrap.servers": "b",
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "flink",
                "sasl.password": 'a" password="b',
            }
        )


def test_latest_checkpoint_is_the_newest_completed_one(tmp_path: Path) -> None:
    assert latest_checkpoint(str(tmp_path)) is None
    old = tmp_path / "job1" / "chk-7"
    new = tmp_path / "job2" / "chk-3"
    unfinished = tmp_path / "job2" / "chk-4"  # no _metadata: not completed
    for directory in (old, new, unfinished):
        directory.mkdir(parents=True)
    (old / "_metadata").write_bytes(b"m")
    (new / "_metadata").write_bytes(b"m")
    os.utime(old / "_metadata", (1_000, 1_000))
    os.utime(new / "_metadata", (2_000, 2_000))
    assert latest_checkpoint(str(tmp_path)) == str(new)
    assert latest_checkpoint("s3://bucket/checkpoints") is None


def test_flink_config_restores_and_needs_the_jars(tmp_path: Path) -> None:
    jars = tmp_path / "lib"
    jars.mkdir()
    settings = FlinkSettings(home=tmp_path, flink_jars_dir=jars, flink_parallelism=2)
    with pytest.raises(ConfigError, match="make flink"):
        flink_config(settings, None)
    (jars / "connector.jar").write_bytes(b"")
    config = flink_config(settings, "/ckpt/job/chk-3")
    assert config["execution.state-recovery.path"] == "/ckpt/job/chk-3"
    assert config["parallelism.default"] == "2"
    assert config["execution.checkpointing.dir"] == (tmp_path / "flink" / "checkpoints").resolve().as_uri()
    assert config["pipeline.jars"] == (jars / "connector.jar").resolve().as_uri()
    assert "execution.state-recovery.path" not in flink_config(settings, None)


RAW = RawRecord("p.xp.flink.events", 2, 40, b"u1", b"{}", 1_700_000_000_000)


def test_a_hand_off_record_gets_its_source_back() -> None:
    headers = [
        ("xp-source-topic", b"p.xp.events"),
        ("xp-source-partition", b"2"),
        ("xp-source-offset", b"1234"),
    ]
    assert source_record(RAW, headers, "p.xp.events") == RawRecord(
        "p.xp.events", 2, 1234, b"u1", b"{}", 1_700_000_000_000
    )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("xp-source-topic", b"p.xp.events"), ("xp-source-partition", b"2")],
        [("xp-source-topic", b"p.xp.events"), ("xp-source-partition", b"x"), ("xp-source-offset", b"1")],
        [("xp-source-topic", b"\xff"), ("xp-source-partition", b"2"), ("xp-source-offset", b"1")],
        [("xp-source-topic", None), ("xp-source-partition", b"2"), ("xp-source-offset", b"1")],
        [("xp-source-topic", b"p.xp.exposures"), ("xp-source-partition", b"2"), ("xp-source-offset", b"1")],
        [("xp-source-topic", b"p.xp.events"), ("xp-source-partition", b"-1"), ("xp-source-offset", b"1")],
        [("xp-source-topic", b"p.xp.events"), ("xp-source-partition", b"2"), ("xp-source-offset", b"-5")],
    ],
)
def test_a_hand_off_record_without_a_valid_source_is_refused(headers: list[tuple[str, bytes]] | None) -> None:
    with pytest.raises(HandoffError, match=r"hand-off record p\.xp\.flink\.events/2@40"):
        source_record(RAW, headers, "p.xp.events")


def test_the_flink_principal_has_least_privilege() -> None:
    entries = acl_entries(lambda name: f"p.{name}", "p.")
    flink = f"User:{FLINK}"
    mine = {(e.resource_type, e.name, e.pattern, e.operation) for e in entries if e.principal == flink}
    assert mine == {
        ("TOPIC", "p.xp.exposures", "LITERAL", "READ"),
        ("TOPIC", "p.xp.events", "LITERAL", "READ"),
        ("TOPIC", "p.xp.flink.exposures", "LITERAL", "WRITE"),
        ("TOPIC", "p.xp.flink.events", "LITERAL", "WRITE"),
        ("TOPIC", "p.xp.flink.attributions", "LITERAL", "WRITE"),
        ("GROUP", "xp-", "PREFIXED", "READ"),
        ("GROUP", "p.", "PREFIXED", "READ"),
        ("TRANSACTIONAL_ID", "xp-flink-", "PREFIXED", "WRITE"),
        ("TRANSACTIONAL_ID", "xp-flink-", "PREFIXED", "DESCRIBE"),
    }
    worker = {(e.name, e.operation) for e in entries if e.principal == f"User:{WORKER}"}
    assert {("p.xp.flink.exposures", "READ"), ("p.xp.flink.events", "READ")} <= worker
    assert ("p.xp.flink.attributions", "READ") in worker
    writers = {e.principal for e in entries if e.name.startswith("p.xp.flink.") and e.operation == "WRITE"}
    assert writers == {f"User:{FLINK}"}


def test_the_cluster_job_spec_is_private_and_left_to_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import stat

    from pipelines.flink.launcher import main

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"experiments": {"exp-a": {"variations": [{"id": 0, "key": "c"}]}}}))
    monkeypatch.setenv("XP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XP_STREAM_REGISTRY_FILE", str(registry))
    monkeypatch.setenv("XP_FLINK_CHECKPOINT_DIR", "s3://lake/flink/checkpoints")
    out = tmp_path / "spec" / "job-spec.json"
    assert main([str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    spec = json.loads(out.read_text())
    config = spec["config"]
    assert config["execution.checkpointing.dir"] == "s3://lake/flink/checkpoints"
    # jars in the image's lib, restores and restarts by the operator
    for key in ("pipeline.jars", "execution.state-recovery.path", "restart-strategy.type"):
        assert key not in config
    # 2 sources, 2 hand-off sinks, 2 checked and 2 kept views; the attribution's sink, function, input
    assert len(spec["ddl"]) == 11 and len(spec["inserts"]) == 3
    assert "xp_attribute(input => TABLE attribution_in PARTITION BY unit_id" in spec["inserts"][2]
    assert "'exp-a/0'" in "\n".join(spec["ddl"])
    assert main([]) == 2


def test_the_job_restarts_from_its_checkpoint_when_the_registry_lists_change(tmp_path: Path) -> None:
    from datetime import timedelta

    from pipelines.flink.launcher import FlinkJob
    from pipelines.kernel import ValidationRules

    def rules(variations: dict[str, frozenset[int]] | None) -> ValidationRules:
        return ValidationRules(timedelta(minutes=5), timedelta(days=7), frozenset({"buy"}), variations)

    job = FlinkJob(FlinkSettings(home=tmp_path), rules({"a": frozenset({0, 1})}))
    calls: list[str] = []
    job.start = lambda: calls.append("start")  # type: ignore[method-assign]
    job.stop = lambda timeout=30.0: calls.append("stop")  # type: ignore[method-assign]
    assert not job.follow(rules({"a": frozenset({0, 1})}))  # a new view, the same lists: no restart
    assert calls == []
    assert job.follow(rules({"a": frozenset({0, 1}), "b": frozenset({0})}))
    assert calls == ["stop", "start"]
    assert job.rules.known_variations == {"a": frozenset({0, 1}), "b": frozenset({0})}
    assert job.follow(rules(None)) and calls == ["stop", "start", "stop", "start"]
