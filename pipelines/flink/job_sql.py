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
docs/decisions/0080-flink-runner-exactly-once-hand-off.md: which rules run where, and why).

Every value that reaches the SQL text (topics, credentials, experiment keys, event names) is a quoted
literal (:func:`literal`); numbers are formatted from ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FlinkJobSpec", "job_statements", "literal", "options_clause"]

SHADED_SCRAM = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
SHADED_PLAIN = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule"
"""The login modules as relocated inside flink-sql-connector-kafka (the shaded kafka-clients)."""

TIME_MARGIN_SECONDS = 1
"""The job's time check is this much stricter than the kernel's on both sides, so a record the job
deduplicates is always one the kernel's time rule accepts (the job's check parses whole seconds and
fractions as Flink does; the kernel's compares whole milliseconds)."""

RFC3339_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
"""The record times the job parses (UTC, 'Z'); any other spelling is left to the kernel."""


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
    known_variations: Mapping[str, frozenset[int]] | None = None
    """None: no registry known to the job: exposures are not deduplicated by the job (the kernel does)."""
    known_event_names: frozenset[str] | None = None
    """None: no catalog known to the job: events are not deduplicated by the job (the kernel does)."""
    transaction_timeout_ms: int = 600_000
    extra: Mapping[str, str] = field(default_factory=dict)


def literal(value: str) -> str:
    """A Flink SQL string literal: single quotes doubled; control characters refused (no value of ours
    has one, and a newline in a literal is where an injection would start)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"control character in a SQL literal: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def options_clause(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{literal(key)} = {literal(value)}" for key, value in options.items())


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


def _sink(name: str, topic: str, spec: FlinkJobSpec, suffix: str) -> str:
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
    return f"""CREATE TEMPORARY TABLE {name} (
  `k` BYTES,
  `v` BYTES,
  `headers` MAP<STRING, BYTES> METADATA,
  `ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {options_clause(options)}
)"""


def _time_ok(field_name: str, spec: FlinkJobSpec) -> str:
    """The record time within the bounds of its Kafka timestamp (each bound narrowed by the margin)."""
    text = f"JSON_VALUE(s, '$.{field_name}')"
    at = f"CAST(REPLACE(REPLACE({text}, 'T', ' '), 'Z', '') AS TIMESTAMP(3))"
    reference = "CAST(src_ts AS TIMESTAMP(3))"
    skew = spec.max_future_skew_seconds - TIME_MARGIN_SECONDS
    lateness = spec.max_lateness_seconds - TIME_MARGIN_SECONDS
    return (
        f"REGEXP({text}, {literal(RFC3339_UTC)}) AND {at} <= TIMESTAMPADD(SECOND, {int(skew)}, {reference})"
        f" AND {at} >= TIMESTAMPADD(SECOND, {-int(lateness)}, {reference})"
    )


def _exposure_known(spec: FlinkJobSpec) -> str | None:
    if spec.known_variations is None:
        return None
    pairs = sorted(f"{key}/{vid}" for key, ids in spec.known_variations.items() for vid in ids)
    if not pairs:
        return "FALSE"
    key = "JSON_VALUE(s, '$.experiment_key')"
    variation = "JSON_VALUE(s, '$.variation_id' RETURNING INT)"
    listed = ", ".join(literal(pair) for pair in pairs)
    return f"{key} || '/' || CAST({variation} AS STRING) IN ({listed})"


def _event_known(spec: FlinkJobSpec) -> str | None:
    if spec.known_event_names is None:
        return None
    if not spec.known_event_names:
        return "FALSE"
    listed = ", ".join(literal(name) for name in sorted(spec.known_event_names))
    return f"JSON_VALUE(s, '$.event_name') IN ({listed})"


def _pipeline(source: str, sink: str, topic: str, id_field: str, known: str | None) -> str:
    """INSERT: one keyed deduplication over every record (so each record's JSON is parsed once). A record
    that passes the job's checks is keyed by its id and bytes (a byte-identical copy is dropped); any
    other record by its own partition and offset (unique: it always goes through, for the kernel)."""
    checked = "FALSE" if known is None else f"({known}) AND {id_field}_ok AND time_ok"
    headers = (
        f"MAP['xp-source-topic', CAST({literal(topic)} AS BYTES), "
        "'xp-source-partition', CAST(CAST(src_partition AS STRING) AS BYTES), "
        "'xp-source-offset', CAST(CAST(src_offset AS STRING) AS BYTES)]"
    )
    # Table names are this module's constants and every value is a literal(): not injectable.
    return f"""INSERT INTO {sink}
SELECT k, v, {headers} AS headers, src_ts AS ts FROM (
  SELECT k, v, src_partition, src_offset, src_ts,
    ROW_NUMBER() OVER (PARTITION BY dedup_key ORDER BY pt ASC) AS row_num
  FROM (
    SELECT k, v, src_partition, src_offset, src_ts, pt,
      CASE WHEN COALESCE({checked}, FALSE) THEN 'd|' || rec_id || '|' || MD5(s)
        ELSE 'p|' || CAST(src_partition AS STRING) || '|' || CAST(src_offset AS STRING) END AS dedup_key
    FROM {source}_parsed
  )
)
WHERE row_num = 1"""  # nosec B608 - names are constants, values literal()s


def _parsed_view(source: str, id_field: str, time_field: str, spec: FlinkJobSpec) -> str:
    return f"""CREATE TEMPORARY VIEW {source}_parsed AS
SELECT k, v, src_partition, src_offset, src_ts, pt, s,
  JSON_VALUE(s, '$.{id_field}') AS rec_id,
  COALESCE(CHAR_LENGTH(JSON_VALUE(s, '$.{id_field}')) > 0, FALSE) AS {id_field}_ok,
  COALESCE({_time_ok(time_field, spec)}, FALSE) AS time_ok
FROM (SELECT *, CAST(v AS STRING) AS s FROM {source})"""  # nosec B608 - as above


def job_statements(spec: FlinkJobSpec) -> tuple[list[str], list[str]]:
    """(DDL statements, INSERT statements): the job runs every INSERT in one statement set."""
    ddl = [
        _source("exposures_in", spec.exposures_topic, spec),
        _source("events_in", spec.events_topic, spec),
        _sink("exposures_out", spec.exposures_handoff, spec, "e"),
        _sink("events_out", spec.events_handoff, spec, "v"),
        _parsed_view("exposures_in", "exposure_id", "exposed_at", spec),
        _parsed_view("events_in", "event_id", "occurred_at", spec),
    ]
    inserts = [
        _pipeline(
            "exposures_in", "exposures_out", spec.exposures_topic, "exposure_id", _exposure_known(spec)
        ),
        _pipeline("events_in", "events_out", spec.events_topic, "event_id", _event_known(spec)),
    ]
    return ddl, inserts
