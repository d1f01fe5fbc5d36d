"""The Flink SQL of the Flink runner's job, built from the worker's settings (pure: strings, no Flink).

The job (``pipelines/flink/job.py``, run by ``.venv-flink``'s Python on Flink's JVM) reads ``xp.exposures``
and ``xp.events`` as bytes with their Kafka coordinates, and writes every record to the hand-off topic of
its kind (``xp.flink.exposures``, ``xp.flink.events``) through Flink's **transactional** Kafka sink: a
checkpoint commits the transaction, so the hand-off holds each input record exactly once for a
``read_committed`` reader (the loader, ``pipelines/flink/loader.py``). On the JVM, per record: JSON
parsing, the record id, the time bounds against the Kafka timestamp, the registry and catalog checks, and
a keyed deduplication with state TTL (``ROW_NUMBER() … = 1`` over the id and the bytes, the
``XP_STREAM_DEDUP_RETENTION_SECONDS``). What it drops is only a byte-identical copy of a record that
passed every one of those checks; everything else goes through unchanged, with its source topic,
partition, offset (headers) and Kafka timestamp, for the kernel's verdict (docs/flink.md and
docs/decisions/0080-flink-runner-exactly-once-hand-off.md: which rules run where, and why). The records
judged ``ok`` and kept also feed the job's attribution (:mod:`pipelines.flink.attribution_sql`, a Java
process table function), whose rows go to ``xp.flink.attributions`` in the same transactions (0102).

Every value that reaches the SQL text (topics, credentials, experiment keys, event names) is a quoted
literal (:func:`literal`); numbers are formatted from ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines.flink.attribution_sql import (
    AttributionParams,
    attribution_columns,
    attribution_function,
    attribution_input,
    attribution_insert,
)
from pipelines.flink.sql_text import literal, options_clause
from pipelines.flink.verdict_sql import (
    EVENT_FIELDS,
    EXPOSURE_FIELDS,
    FieldRule,
    VerdictParams,
    parse_columns,
    verdict_columns,
    verdict_expression,
)

__all__ = ["FlinkJobSpec", "job_statements", "literal", "options_clause"]

SHADED_SCRAM = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
SHADED_PLAIN = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule"
"""The login modules as relocated inside flink-sql-connector-kafka (the shaded kafka-clients)."""


@dataclass(frozen=True)
class FlinkJobSpec:
    """What the job needs: topics, the connection, the checks' parameters."""

    exposures_topic: str
    events_topic: str
    exposures_handoff: str
    events_handoff: str
    kafka_properties: Mapping[str, str]
    """Kafka client properties without the ``properties.`` prefix (bootstrap, security, SASL JAAS)."""
    group_id: str
    """The source's consumer group (offsets committed on each checkpoint, for lag and monitoring)."""
    transactional_id_prefix: str
    max_future_skew_seconds: int
    max_lateness_seconds: int
    dedup_retention_seconds: int
    max_record_bytes: int = 1_048_576
    max_abs_metric_value: float = 1e15
    known_variations: Mapping[str, frozenset[int]] | None = None
    """None: no registry known to the job: exposures are not deduplicated by the job (the kernel does)."""
    known_event_names: frozenset[str] | None = None
    """None: no catalog known to the job: events are not deduplicated by the job (the kernel does)."""
    transaction_timeout_ms: int = 600_000
    extra: Mapping[str, str] = field(default_factory=dict)
    attributions_handoff: str | None = None
    """The topic of the job's attribution rows (``xp.flink.attributions``); None: none on the JVM."""
    attribution: AttributionParams | None = None


def _kafka_options(spec: FlinkJobSpec) -> dict[str, str]:
    return {f"properties.{key}": value for key, value in spec.kafka_properties.items()}


def _source(name: str, topic: str, spec: FlinkJobSpec) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.group.id": spec.group_id,
        "properties.auto.offset.reset": "earliest",
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "group-offsets",
        "key.format": "raw",
        "key.fields": "k",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **_kafka_options(spec),
    }
    return f"""CREATE TEMPORARY TABLE {name} (
  `k` BYTES,
  `v` BYTES,
  `src_partition` INT METADATA FROM 'partition' VIRTUAL,
  `src_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  `src_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `pt` AS PROCTIME()
) WITH (
  {options_clause(options)}
)"""


def _sink(name: str, topic: str, spec: FlinkJobSpec, suffix: str, *, metadata: bool = True) -> str:
    """A hand-off topic written by the exactly-once Kafka sink (transactional-id prefix + ``suffix``);
    with ``metadata`` the records carry headers and a timestamp (the record hand-offs), else key and value
    only (the attribution rows)."""
    options = {
        "connector": "kafka",
        "topic": topic,
        "key.format": "raw",
        "key.fields": "k",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        "sink.partitioner": "default",
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": f"{spec.transactional_id_prefix}{suffix}",
        "properties.transaction.timeout.ms": str(spec.transaction_timeout_ms),
        **_kafka_options(spec),
    }
    columns = "`k` BYTES,\n  `v` BYTES"
    if metadata:
        columns += (
            ",\n  `headers` MAP<STRING, BYTES> METADATA,\n  `ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'"
        )
    return f"""CREATE TEMPORARY TABLE {name} (
  {columns}
) WITH (
  {options_clause(options)}
)"""


def _exposure_rules(spec: FlinkJobSpec) -> list[tuple[str, str]]:
    """The registry's rules (TRUE: broken), in the kernel's order; none without a registry."""
    if spec.known_variations is None:
        return []
    key = "JSON_VALUE(s, '$.experiment_key')"
    variation = "JSON_VALUE(s, '$.variation_id' RETURNING INT)"
    keys = sorted(spec.known_variations)
    pairs = sorted(f"{k}/{vid}" for k, ids in spec.known_variations.items() for vid in ids)
    unknown_key = f"{key} NOT IN ({', '.join(map(literal, keys))})" if keys else "TRUE"
    unknown_pair = (
        f"{key} || '/' || CAST({variation} AS STRING) NOT IN ({', '.join(map(literal, pairs))})"
        if pairs
        else "TRUE"
    )
    return [(unknown_key, "unknown_experiment"), (unknown_pair, "unknown_variation")]


def _event_rules(spec: FlinkJobSpec) -> list[tuple[str, str]]:
    """The catalog's rule (TRUE: broken); none without a catalog."""
    if spec.known_event_names is None:
        return []
    names = sorted(spec.known_event_names)
    listed = ", ".join(map(literal, names))
    return [(f"JSON_VALUE(s, '$.event_name') NOT IN ({listed})" if names else "TRUE", "unknown_event_name")]


def _kept_view(source: str, dedup: bool) -> str:
    """The records the job hands off: one keyed deduplication over every record (so each record's JSON
    is parsed once). A record the job judged ``ok`` is keyed by its id and bytes (a byte-identical copy is
    dropped); any other by its own partition and offset (unique: it always goes through, for the kernel).
    Without a registry (catalog) nothing is deduplicated here: the kernel's verdict could still change
    with it. The hand-off and the attribution read this one view (one dedup state)."""
    checked = "verdict = 'ok'" if dedup else "FALSE"
    # Table names are this module's constants and every value is a literal(): not injectable.
    return f"""CREATE TEMPORARY VIEW {source}_kept AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY dedup_key ORDER BY pt ASC) AS row_num
  FROM (
    SELECT *,
      CASE WHEN COALESCE({checked}, FALSE) THEN 'd|' || rec_id || '|' || MD5(s)
        ELSE 'p|' || CAST(src_partition AS STRING) || '|' || CAST(src_offset AS STRING) END AS dedup_key
    FROM {source}_checked
  )
)
WHERE row_num = 1"""  # nosec B608 - names are constants, values literal()s


def _pipeline(source: str, sink: str, topic: str) -> str:
    """INSERT: every kept record to its hand-off topic, with its source coordinates and verdict."""
    headers = (
        f"MAP['xp-source-topic', CAST({literal(topic)} AS BYTES), "
        "'xp-source-partition', CAST(CAST(src_partition AS STRING) AS BYTES), "
        "'xp-source-offset', CAST(CAST(src_offset AS STRING) AS BYTES), "
        "'xp-verdict', CAST(verdict AS BYTES)]"
    )
    return f"""INSERT INTO {sink}
SELECT k, v, {headers} AS headers, src_ts AS ts FROM {source}_kept"""  # nosec B608 - as above


def _checked_view(
    source: str,
    id_field: str,
    time_field: str,
    fields: tuple[FieldRule, ...],
    rules: list[tuple[str, str]],
    spec: FlinkJobSpec,
) -> str:
    params = VerdictParams(
        max_record_bytes=spec.max_record_bytes,
        max_abs_metric_value=spec.max_abs_metric_value,
        max_future_skew_seconds=spec.max_future_skew_seconds,
        max_lateness_seconds=spec.max_lateness_seconds,
    )
    items, names = attribution_columns(time_field)
    return f"""CREATE TEMPORARY VIEW {source}_checked AS
SELECT k, v, src_partition, src_offset, src_ts, pt, s, rec_id, {names},
  {verdict_expression(rules, params)} AS verdict
FROM (
  SELECT k, v, src_partition, src_offset, src_ts, pt, s, j_{id_field} AS rec_id, {items},
    {verdict_columns(fields, time_field, params)}
  FROM (
    SELECT k, v, src_partition, src_offset, src_ts, pt, s, b64,
    {parse_columns(fields)}
    FROM (SELECT *, CAST(v AS STRING) AS s, TO_BASE64(v) AS b64 FROM {source})
  )
)"""  # nosec B608 - as above


def job_statements(spec: FlinkJobSpec) -> tuple[list[str], list[str]]:
    """(DDL statements, INSERT statements): the job runs every INSERT in one statement set."""
    ddl = [
        _source("exposures_in", spec.exposures_topic, spec),
        _source("events_in", spec.events_topic, spec),
        _sink("exposures_out", spec.exposures_handoff, spec, "e"),
        _sink("events_out", spec.events_handoff, spec, "v"),
        _checked_view(
            "exposures_in", "exposure_id", "exposed_at", EXPOSURE_FIELDS, _exposure_rules(spec), spec
        ),
        _checked_view("events_in", "event_id", "occurred_at", EVENT_FIELDS, _event_rules(spec), spec),
    ]
    ddl += [
        _kept_view("exposures_in", spec.known_variations is not None),
        _kept_view("events_in", spec.known_event_names is not None),
    ]
    inserts = [
        _pipeline("exposures_in", "exposures_out", spec.exposures_topic),
        _pipeline("events_in", "events_out", spec.events_topic),
    ]
    if spec.attributions_handoff is not None and spec.attribution is not None:
        # Only records judged ok (hence with a registry and a catalog: else nothing is ok-deduplicated).
        ddl += [
            _sink("attributions_out", spec.attributions_handoff, spec, "a", metadata=False),
            attribution_function(),
            attribution_input("exposures_in_kept", "events_in_kept"),
        ]
        inserts.append(attribution_insert("attributions_out", spec.attribution))
    return ddl, inserts
