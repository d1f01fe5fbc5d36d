"""Event contracts: records, codec, Arrow converters, generated JSON Schemas and the migration SQL text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import generate
from schemas.arrow import TABLES, binding_for, clickhouse_type, to_arrow
from schemas.codec import DEFAULT_MAX_RECORD_BYTES, RecordCodec, RecordError, make_dead_letter
from schemas.records import (
    SCHEMA_VERSION,
    DeadLetter,
    DeadLetterReason,
    ExperimentDefinition,
    ExperimentStatus,
    Exposure,
    ExposureSource,
    FeatureDefinition,
    FeatureStatus,
    MetricEvent,
    Override,
    RecordKind,
    RegistryChange,
    RegistryKind,
    RegistryPayload,
    RegistryRecord,
    registry_key,
)
from xpcore.config import KafkaSettings
from xpcore.errors import TerminalError

MIGRATIONS = Path(__file__).resolve().parents[2] / "sql" / "migrations"
T0 = datetime(2024, 5, 17, 12, 30, 45, 123000, tzinfo=UTC)


def make_exposure(**changes: Any) -> Exposure:
    fields: dict[str, Any] = {
        "exposure_id": "9b1f0c1e-0000-4000-8000-000000000001",
        "unit_id": "user-42",
        "hash_attribute": "id",
        "experiment_key": "checkout-button",
        "variation_id": 1,
        "variation_key": "treatment",
        "feature_key": "checkout-button-color",
        "bucket": 0.4321,
        "overridden": False,
        "source": ExposureSource.SERVICE,
        "attributes": {"country": "DE", "device": "mobile"},
        "user_agent": "Mozilla/5.0",
        "exposed_at": T0,
        "sent_at": T0 + timedelta(milliseconds=5),
    }
    fields.update(changes)
    return Exposure(**fields)


def make_event(**changes: Any) -> MetricEvent:
    fields: dict[str, Any] = {
        "event_id": "9b1f0c1e-0000-4000-8000-000000000002",
        "unit_id": "user-42",
        "event_name": "purchase",
        "value": 19.99,
        "properties": {"currency": "EUR"},
        "occurred_at": T0,
    }
    fields.update(changes)
    return MetricEvent(**fields)


def make_dead_letter_record(**changes: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "dead_letter_id": "dl-1",
        "reason": DeadLetterReason.INVALID_UTF8,
        "detail": "not valid UTF-8",
        "record_kind": RecordKind.EXPOSURE,
        "source_topic": "xp.exposures",
        "source_partition": 3,
        "source_offset": 1234,
        "original_key": b"user-42",
        "original": b'{"unit_id": "\xff\xfe"}',
        "received_at": T0,
    }
    fields.update(changes)
    return DeadLetter(**fields)


def make_registry_records() -> list[RegistryRecord]:
    experiment = ExperimentDefinition(
        key="checkout-button",
        version=2,
        status=ExperimentStatus.RUNNING,
        name="Checkout button colour",
        definition={"key": "checkout-button", "variations": ["blue", "green"], "weights": [0.5, 0.5]},
        metadata={"owner": "growth", "metrics": {"primary": ["conversion"]}},
    )
    feature = FeatureDefinition(
        key="checkout-button-color",
        version=1,
        status=FeatureStatus.ACTIVE,
        definition={"defaultValue": "blue", "rules": [{"key": "checkout-button", "variations": ["blue"]}]},
    )
    override = Override(
        experiment_key="checkout-button",
        unit_id="qa-1",
        variation_id=1,
        variation_key="green",
        expires_at=T0 + timedelta(days=7),
        reason="QA",
    )
    payloads: list[tuple[RegistryKind, RegistryPayload]] = [
        (RegistryKind.EXPERIMENT, experiment),
        (RegistryKind.FEATURE, feature),
        (RegistryKind.OVERRIDE, override),
    ]
    records = [
        RegistryRecord(
            record_id=f"r{index}",
            kind=kind,
            key=registry_key(payload),
            change=RegistryChange.CREATED,
            changed_by="alice@example.com",
            changed_at=T0 + timedelta(seconds=index),
            payload=payload,
        )
        for index, (kind, payload) in enumerate(payloads)
    ]
    records.append(
        RegistryRecord(
            record_id="r3",
            kind=RegistryKind.OVERRIDE,
            key="override:checkout-button:qa-1",
            change=RegistryChange.DELETED,
            changed_by="bob",
            changed_at=T0 + timedelta(seconds=9),
        )
    )
    return records


def sample_records() -> list[Any]:
    return [make_exposure(), make_event(), make_dead_letter_record(), *make_registry_records()]


# --- records and codec --------------------------------------------------------------------------------


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_encode_decode_round_trip(record: Any) -> None:
    codec = RecordCodec(type(record))
    data = codec.encode(record)
    compact = json.dumps(json.loads(data.decode("utf-8")), separators=(",", ":"), ensure_ascii=False)
    assert data == compact.encode("utf-8")
    assert codec.decode(data) == record
    assert json.loads(data)["schema_version"] == SCHEMA_VERSION


def test_dead_letter_reason_is_always_a_known_non_empty_code() -> None:
    assert make_dead_letter_record(reason="too_large").reason is DeadLetterReason.TOO_LARGE
    with pytest.raises(ValueError):
        make_dead_letter_record(reason="")
    with pytest.raises(ValueError, match="detail"):
        make_dead_letter_record(detail="")


def test_dead_letter_bytes_are_base64_in_json() -> None:
    record = make_dead_letter_record()
    document = json.loads(RecordCodec(DeadLetter).encode(record))
    assert document["original"] == "eyJ1bml0X2lkIjogIv/+In0="
    assert document["reason"] == "invalid_utf8"


def test_registry_payload_is_tagged_by_kind() -> None:
    codec = RecordCodec(RegistryRecord)
    for record in make_registry_records():
        document = json.loads(codec.encode(record))
        if record.payload is not None:
            assert document["payload"]["kind"] == document["kind"] == record.kind
    override = make_registry_records()[2]
    assert isinstance(codec.decode(codec.encode(override)).payload, Override)


def test_timestamps_are_normalised_to_utc_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    exposure = make_exposure(exposed_at=datetime(2024, 5, 17, 14, 30, 45, 123987, tzinfo=plus_two))
    assert exposure.exposed_at == T0
    assert exposure.exposed_at.tzinfo is UTC
    decoded = RecordCodec(MetricEvent).decode(
        b'{"event_id":"e","unit_id":"u","event_name":"pageview","occurred_at":"2024-05-17T14:30:45.1239+02:00"}'
    )
    assert decoded.occurred_at == T0 and decoded.occurred_at.tzinfo is UTC
    assert decoded.value is None and decoded.properties == {} and decoded.schema_version == 1


def test_naive_timestamps_are_rejected_in_code_and_at_decode() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_exposure(exposed_at=datetime(2024, 1, 1))
    document = json.loads(RecordCodec(Exposure).encode(make_exposure()))
    document["exposed_at"] = "2024-05-17T12:30:45"
    with pytest.raises(RecordError) as caught:
        RecordCodec(Exposure).decode(json.dumps(document).encode())
    assert caught.value.reason is DeadLetterReason.BAD_TIMESTAMP
    assert "exposed_at" in caught.value.detail


def valid_exposure_document() -> dict[str, Any]:
    return json.loads(RecordCodec(Exposure).encode(make_exposure()))


_DROP = object()


def with_changes(**changes: Any) -> bytes:
    document = valid_exposure_document()
    for name, value in changes.items():
        if value is _DROP:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "reason", "detail_part"),
    [
        (None, DeadLetterReason.INVALID_JSON, "no value"),
        (b"", DeadLetterReason.INVALID_JSON, "truncated"),
        (b'{"exposure_id": "x"', DeadLetterReason.INVALID_JSON, "truncated"),
        (with_changes() + b" trailing", DeadLetterReason.INVALID_JSON, "trailing"),
        (b"NaN", DeadLetterReason.INVALID_JSON, "malformed"),
        (b"\xff\xfe{}", DeadLetterReason.INVALID_UTF8, "UTF-8"),
        (b'{"exposure_id": "\xc3\x28"}', DeadLetterReason.INVALID_UTF8, "UTF-8"),
        (b"[1, 2]", DeadLetterReason.SCHEMA_VIOLATION, "Expected `object`"),
        (b"null", DeadLetterReason.MISSING_FIELD, "null"),
        (with_changes(variation_id="1"), DeadLetterReason.SCHEMA_VIOLATION, "$.variation_id"),
        (with_changes(variation_id=-1), DeadLetterReason.SCHEMA_VIOLATION, "$.variation_id"),
        (with_changes(source="carrier-pigeon"), DeadLetterReason.SCHEMA_VIOLATION, "$.source"),
        (with_changes(attributes={"age": 31}), DeadLetterReason.SCHEMA_VIOLATION, "$.attributes"),
        (with_changes(unit_id=""), DeadLetterReason.SCHEMA_VIOLATION, "$.unit_id"),
        (with_changes(bucket=1.5), DeadLetterReason.SCHEMA_VIOLATION, "$.bucket"),
        (
            with_changes(bucket=0.5).replace(b"0.5", b"1e400"),  # beyond float64: not finite
            DeadLetterReason.VALUE_NOT_FINITE,
            "$.bucket",
        ),
        (with_changes(unit_id=_DROP), DeadLetterReason.MISSING_FIELD, "unit_id"),
        (with_changes(unit_id=None), DeadLetterReason.MISSING_FIELD, "$.unit_id"),
        (with_changes(exposed_at=None), DeadLetterReason.MISSING_FIELD, "$.exposed_at"),
        (with_changes(exposed_at="yesterday"), DeadLetterReason.BAD_TIMESTAMP, "$.exposed_at"),
        (with_changes(exposed_at=1715949045), DeadLetterReason.BAD_TIMESTAMP, "$.exposed_at"),
        (with_changes(sent_at="2024-05-17 12:30"), DeadLetterReason.BAD_TIMESTAMP, "$.sent_at"),
        (with_changes(exposed_at="9999-01-01T00:00:00Z"), DeadLetterReason.BAD_TIMESTAMP, "storable range"),
    ],
)
def test_decode_failures_are_coded(data: bytes | None, reason: DeadLetterReason, detail_part: str) -> None:
    with pytest.raises(RecordError) as caught:
        RecordCodec(Exposure).decode(data)
    assert caught.value.reason is reason
    assert detail_part in caught.value.detail
    assert isinstance(caught.value, TerminalError)
    assert str(caught.value).startswith(f"{reason.value}: ")


@pytest.mark.parametrize(
    ("field", "text", "stored"),
    [
        ("exposed_at", "1899-12-31T23:59:59.999Z", None),
        ("exposed_at", "1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("exposed_at", "1900-01-01T00:30:00+01:00", None),  # 1899-12-31T23:30Z
        ("exposed_at", "1899-12-31T23:30:00-01:00", datetime(1900, 1, 1, 0, 30, tzinfo=UTC)),
        ("exposed_at", "2299-12-31T23:59:59.9999Z", datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        ("exposed_at", "2300-01-01T00:00:00Z", None),
        ("exposed_at", "2299-12-31T23:30:00-01:00", None),  # 2300-01-01T00:30Z
        ("sent_at", "1899-12-31T23:59:59.999Z", None),
        ("sent_at", "2300-01-01T00:30:00+01:00", datetime(2299, 12, 31, 23, 30, tzinfo=UTC)),
        ("sent_at", "2300-01-01T00:00:00Z", None),
    ],
)
def test_storable_range_is_checked_in_utc(field: str, text: str, stored: datetime | None) -> None:
    """The range [1900-01-01, 2300-01-01) UTC holds at both ends, offsets applied first."""
    data = with_changes(**{field: text})
    if stored is None:
        with pytest.raises(RecordError, match="storable range") as caught:
            RecordCodec(Exposure).decode(data)
        assert caught.value.reason is DeadLetterReason.BAD_TIMESTAMP
    else:
        assert getattr(RecordCodec(Exposure).decode(data), field) == stored


def test_unknown_fields_are_ignored_for_additive_changes() -> None:
    exposure = RecordCodec(Exposure).decode(with_changes(added_in_v2="x", schema_version=2))
    assert exposure.schema_version == 2 and exposure.unit_id == "user-42"


def test_size_limit_applies_to_decode_and_encode() -> None:
    codec = RecordCodec(MetricEvent, max_record_bytes=1024)
    big = make_event(properties={"blob": "x" * 2000})
    with pytest.raises(RecordError) as caught:
        codec.encode(big)
    assert caught.value.reason is DeadLetterReason.TOO_LARGE
    data = RecordCodec(MetricEvent).encode(big)
    with pytest.raises(RecordError) as caught:
        codec.decode(data)
    assert caught.value.reason is DeadLetterReason.TOO_LARGE
    assert "1024" in caught.value.detail
    with pytest.raises(RecordError, match="too_large"):
        RecordCodec(MetricEvent).decode(b"x" * (DEFAULT_MAX_RECORD_BYTES + 1))


def test_default_limit_is_the_kafka_setting_default() -> None:
    assert KafkaSettings.model_fields["max_record_bytes"].default == DEFAULT_MAX_RECORD_BYTES


def test_decode_many_splits_oks_and_failures_by_position() -> None:
    codec = RecordCodec(Exposure, max_record_bytes=2048)
    good = codec.encode(make_exposure())
    values = [good, b"\xff", None, good, b"x" * 4096, with_changes(unit_id=None)]
    batch = codec.decode_many(values)
    assert batch.oks == [make_exposure(), make_exposure()]
    assert batch.ok_positions == [0, 3]
    assert [(position, error.reason) for position, error in batch.failures] == [
        (1, DeadLetterReason.INVALID_UTF8),
        (2, DeadLetterReason.INVALID_JSON),
        (4, DeadLetterReason.TOO_LARGE),
        (5, DeadLetterReason.MISSING_FIELD),
    ]


def test_make_dead_letter_is_deterministic_per_kafka_position() -> None:
    error = RecordError(DeadLetterReason.INVALID_JSON, "truncated")

    def dead_letter(offset: int, key: bytes | None = None) -> DeadLetter:
        return make_dead_letter(
            error,
            b"{",
            record_kind=RecordKind.EXPOSURE,
            source_topic="xp.exposures",
            source_partition=1,
            source_offset=offset,
            original_key=key,
        )

    first, again, other = dead_letter(7, b"user-1"), dead_letter(7), dead_letter(8)
    assert first.dead_letter_id == again.dead_letter_id != other.dead_letter_id
    assert first.reason is DeadLetterReason.INVALID_JSON and first.detail == "truncated"
    assert (first.original, first.original_key) == (b"{", b"user-1")
    assert first.received_at.tzinfo is UTC
    no_value = make_dead_letter(error, None, record_kind=RecordKind.METRIC_EVENT, source_topic="http")
    assert no_value.original == b"" and no_value.source_offset is None


def test_registry_record_checks_kind_key_and_payload() -> None:
    experiment = make_registry_records()[0]
    assert experiment.key == "experiment:checkout-button"
    with pytest.raises(ValueError, match="kind"):
        msgspec.structs.replace(experiment, kind=RegistryKind.FEATURE)
    with pytest.raises(ValueError, match="key"):
        msgspec.structs.replace(experiment, key="experiment:other")
    with pytest.raises(ValueError, match="payload"):
        msgspec.structs.replace(experiment, payload=None)
    document = json.loads(RecordCodec(RegistryRecord).encode(experiment))
    document["key"] = "experiment:other"
    with pytest.raises(RecordError) as caught:
        RecordCodec(RegistryRecord).decode(json.dumps(document).encode())
    assert caught.value.reason is DeadLetterReason.SCHEMA_VIOLATION


# --- property tests: no input crashes the decoder ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def assert_decodes_or_coded_error(codec: RecordCodec[Any], data: bytes) -> None:
    try:
        record = codec.decode(data)
    except RecordError as error:
        assert isinstance(error.reason, DeadLetterReason)
        assert error.detail
    else:
        assert isinstance(record, codec.record_type)


ALL_CODECS: list[RecordCodec[Any]] = [
    RecordCodec(Exposure, max_record_bytes=4096),
    RecordCodec(MetricEvent, max_record_bytes=4096),
    RecordCodec(DeadLetter, max_record_bytes=4096),
    RecordCodec(RegistryRecord, max_record_bytes=4096),
]


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_record_error(data: bytes) -> None:
    for codec in ALL_CODECS:
        assert_decodes_or_coded_error(codec, data)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_random_json_never_raises_anything_but_record_error(value: Any) -> None:
    for codec in ALL_CODECS:
        assert_decodes_or_coded_error(codec, json.dumps(value).encode())


@settings(max_examples=400, deadline=None)
@given(
    record=st.sampled_from(sample_records()),
    field_index=st.integers(min_value=0, max_value=20),
    replacement=json_values,
    cut=st.integers(min_value=0, max_value=2000),
)
def test_mutated_records_decode_or_fail_with_a_code(
    record: Any, field_index: int, replacement: Any, cut: int
) -> None:
    codec = RecordCodec(type(record))
    document = json.loads(codec.encode(record))
    name = list(document)[field_index % len(document)]
    document[name] = replacement
    data = json.dumps(document).encode()
    assert_decodes_or_coded_error(codec, data)
    assert_decodes_or_coded_error(codec, data[:cut])
    assert_decodes_or_coded_error(codec, data[:cut] + b"\x80" + data[cut:])


@settings(max_examples=200, deadline=None)
@given(
    unit_id=st.text(min_size=1, max_size=40),
    variation_id=st.integers(min_value=0, max_value=65535),
    attributes=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
    exposed_at=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(2299, 12, 30), timezones=st.just(UTC)
    ),
    bucket=st.none() | st.floats(min_value=0.0, max_value=1.0),
)
def test_any_valid_exposure_round_trips(
    unit_id: str,
    variation_id: int,
    attributes: dict[str, str],
    exposed_at: datetime,
    bucket: float | None,
) -> None:
    exposure = make_exposure(
        unit_id=unit_id,
        variation_id=variation_id,
        attributes=attributes,
        exposed_at=exposed_at,
        bucket=bucket,
    )
    codec = RecordCodec(Exposure)
    assert codec.decode(codec.encode(exposure)) == exposure
    assert exposure.exposed_at.microsecond % 1000 == 0


# --- Arrow -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("record_type", list(TABLES), ids=lambda t: t.__name__)
def test_arrow_schema_has_one_column_per_record_field(record_type: type) -> None:
    binding = binding_for(record_type)
    assert binding.schema.names == [field.name for field in msgspec.structs.fields(record_type)]


def test_to_arrow_converts_every_table_bound_record() -> None:
    records = sample_records()
    by_type: dict[type, list[Any]] = {}
    for record in records:
        by_type.setdefault(type(record), []).append(record)
    for record_type, group in by_type.items():
        table = to_arrow(group)
        assert table.schema == binding_for(record_type).schema
        assert table.num_rows == len(group)

    exposures = to_arrow([make_exposure(), make_exposure(feature_key=None, sent_at=None, attributes={})])
    assert exposures.column("exposed_at").to_pylist() == [T0, T0]
    assert exposures.column("attributes").to_pylist()[0] == [("country", "DE"), ("device", "mobile")]
    assert exposures.column("feature_key").null_count == 1
    assert exposures.column("source").to_pylist() == ["service", "service"]

    registry = to_arrow(make_registry_records())
    payloads = registry.column("payload").to_pylist()
    assert json.loads(payloads[0])["definition"]["weights"] == [0.5, 0.5]
    assert payloads[3] is None
    dead = to_arrow([make_dead_letter_record()])
    assert dead.column("original").to_pylist() == [b'{"unit_id": "\xff\xfe"}']


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        T0,
        datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_to_arrow_timestamps_are_exact_milliseconds(moment: datetime) -> None:
    events = [make_event(occurred_at=moment, sent_at=None), make_event(occurred_at=moment, sent_at=moment)]
    table = to_arrow(events)
    expected = pa.array([moment, moment], pa.timestamp("us", tz="UTC")).cast(pa.timestamp("ms", tz="UTC"))
    assert table.column("occurred_at").combine_chunks().equals(expected)
    assert table.column("sent_at").to_pylist() == [None, moment]


def test_to_arrow_empty_and_mixed_inputs() -> None:
    empty = to_arrow([], MetricEvent)
    assert empty.num_rows == 0 and empty.schema == binding_for(MetricEvent).schema
    with pytest.raises(ValueError, match="record_type"):
        to_arrow([])
    with pytest.raises(TypeError, match="only Exposure"):
        to_arrow([make_exposure(), make_event()])
    with pytest.raises(KeyError, match="not table-bound"):
        binding_for(Override)


def test_clickhouse_type_mapping() -> None:
    schema = binding_for(Exposure).schema
    assert clickhouse_type(schema.field("exposed_at")) == "DateTime64(3, 'UTC')"
    assert clickhouse_type(schema.field("sent_at")) == "Nullable(DateTime64(3, 'UTC'))"
    assert clickhouse_type(schema.field("attributes")) == "Map(String, String)"
    with pytest.raises(TypeError):
        clickhouse_type(pa.field("x", pa.int8()))


# --- generated JSON Schemas ---------------------------------------------------------------------------


def test_committed_json_schemas_equal_generated_ones() -> None:
    problems = generate.check()
    assert problems == [], f"{problems}: run `python -m schemas.generate` and commit schemas/json/"


def test_json_schema_check_detects_a_hand_edit(tmp_path: Path) -> None:
    generate.write(tmp_path)
    assert generate.check(tmp_path) == []
    path = tmp_path / "exposure.schema.json"
    path.write_text(path.read_text().replace('"unit_id"', '"unitId"'))
    (tmp_path / "extra.schema.json").write_text("{}")
    assert generate.check(tmp_path) == [
        "exposure.schema.json: differs from the code",
        "extra.schema.json: not generated from schemas/records.py",
    ]


def test_json_schemas_describe_required_fields() -> None:
    document = json.loads((generate.JSON_SCHEMA_DIR / "exposure.schema.json").read_text())
    exposure = document["$defs"]["Exposure"]
    assert {"exposure_id", "unit_id", "experiment_key", "exposed_at"} <= set(exposure["required"])
    assert exposure["properties"]["exposed_at"]["format"] == "date-time"
    reasons = json.loads((generate.JSON_SCHEMA_DIR / "dead_letter.schema.json").read_text())
    assert set(reasons["$defs"]["DeadLetterReason"]["enum"]) == {r.value for r in DeadLetterReason}


# --- migration SQL, checked as text (the integration test checks it against chDB) ----------------------

_CREATE_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (?P<table>xp\.\w+)\s*\((?P<body>.*?)\n\)\s*\n(?P<tail>.*)", re.S
)


def migration_statements() -> list[str]:
    statements = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        statements += [s.strip() for s in re.split(r";[ \t]*$", path.read_text(), flags=re.M) if s.strip()]
    return statements


def declared_tables() -> dict[str, tuple[dict[str, str], str]]:
    """table → ({column: type}, text after the column list)."""
    tables = {}
    for statement in migration_statements():
        match = _CREATE_TABLE.search(statement)
        if not match:
            continue
        columns = {}
        for line in match["body"].splitlines():
            line = line.strip().rstrip(",")
            if line and not line.startswith(("CONSTRAINT", "INDEX", "--")):
                name, type_ = line.split(None, 1)
                columns[name] = type_.split(" DEFAULT ")[0]
        tables[match["table"]] = (columns, match["tail"])
    for statement in migration_statements():  # later migrations add columns (ADD COLUMN … AFTER …)
        altered = _ALTER_TABLE.search(statement)
        if not altered or altered["table"] not in tables:
            continue
        columns, tail = tables[altered["table"]]
        for add in _ADD_COLUMN.finditer(statement):
            names = list(columns)
            position = names.index(add["after"]) + 1 if add["after"] else len(names)
            names.insert(position, add["name"])
            types = {**columns, add["name"]: add["type"]}
            columns = {name: types[name] for name in names}
        tables[altered["table"]] = (columns, tail)
    return tables


_ALTER_TABLE = re.compile(r"^\s*ALTER TABLE (?P<table>\S+)", re.M)
_ADD_COLUMN = re.compile(
    r"ADD COLUMN IF NOT EXISTS (?P<name>\w+) (?P<type>.+?)(?: AFTER (?P<after>\w+))?\s*(?:,|$)", re.M
)


def test_migrations_are_numbered_commented_and_idempotent() -> None:
    paths = sorted(MIGRATIONS.glob("*.sql"))
    assert [p.name[:4] for p in paths] == [f"{i:04d}" for i in range(1, len(paths) + 1)]
    for path in paths:
        text = path.read_text()
        assert text.startswith("-- "), f"{path.name}: header comment (grain, time column, engine)"
        assert "grain" in text and "engine" in text
    for path in paths:
        text = path.read_text()
        statements = [s.strip() for s in re.split(r";[ \t]*$", text, flags=re.M) if s.strip()]
        for statement in statements:
            code = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if code.startswith("ALTER TABLE"):
                # Columns added only when missing; a mutation only where its WHERE still matches; a
                # table setting set to a constant (running it again changes nothing).
                setting = re.fullmatch(r"ALTER TABLE \S+ MODIFY SETTING \w+ = \d+", code)
                assert (
                    "ADD COLUMN IF NOT EXISTS" in code or ("UPDATE" in code and "WHERE" in code) or setting
                ), code[:80]
                assert "DROP" not in code and ("MODIFY" not in code or setting), code[:80]
                continue
            if code.startswith("INSERT INTO"):
                # A backfill is allowed when its header says why running it again adds nothing.
                assert "Backfill:" in text and "again adds nothing" in text, f"{path.name}: {code[:60]}"
                continue
            assert code.startswith(
                (
                    "CREATE DATABASE IF NOT EXISTS",
                    "CREATE TABLE IF NOT EXISTS",
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS",
                )
            ), code[:60]


def test_migration_tables_match_arrow_schemas_as_text() -> None:
    tables = declared_tables()
    # Every table bound to a record is declared; stream state and counters add more tables.
    assert set(tables) >= {binding.table for binding in TABLES.values()}
    for binding in TABLES.values():
        columns, tail = tables[binding.table]
        expected = [*binding.schema.names, *binding.defaulted_columns]
        assert list(columns) == expected, binding.table
        for field in binding.schema:
            declared = re.sub(r"^LowCardinality\((.*)\)$", r"\1", columns[field.name])
            assert declared == clickhouse_type(field), (binding.table, field.name)
        assert "non_replicated_deduplication_window = 1000" in tail
        assert f"ORDER BY ({', '.join(binding.sort_key)})" in tail
        assert "ingested_at" in columns and columns["ingested_at"] == "DateTime64(3, 'UTC')"


def test_decode_many_resumes_after_each_failure_within_the_size_limit() -> None:
    # No None and nothing too large: the tight loop runs, stops at each bad value and resumes after it.
    codec = RecordCodec(Exposure, max_record_bytes=2048)
    good = codec.encode(make_exposure())
    values = [b"{", good, good, b"[]", b"\xff", good, with_changes(unit_id=None), good, b"{"]
    batch = codec.decode_many(values)
    assert batch.oks == [make_exposure()] * 4
    assert batch.ok_positions == [1, 2, 5, 7]
    assert [(position, error.reason) for position, error in batch.failures] == [
        (0, DeadLetterReason.INVALID_JSON),
        (3, DeadLetterReason.SCHEMA_VIOLATION),
        (4, DeadLetterReason.INVALID_UTF8),
        (6, DeadLetterReason.MISSING_FIELD),
        (8, DeadLetterReason.INVALID_JSON),
    ]
    assert codec.decode_many([]) == type(batch)([], [], [])
