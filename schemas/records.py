"""The event contracts: one frozen msgspec Struct per record kind that travels on Kafka.

::

    Exposure          xp.exposures      a unit saw a variation of an experiment       → table xp.exposures
    MetricEvent       xp.events         something a unit did (pageview, purchase, …)  → table xp.events
    DeadLetter        xp.dead-letters   a record the stream rejected, with its bytes  → table xp.dead_letters
    RegistryRecord    xp.registry       an audited change to the experiment registry  → table xp.registry
      └─ payload: ExperimentDefinition | FeatureDefinition | Override   (tagged by ``kind``)

Rules every record follows (see docs/schemas.md):

- field names are snake_case; GrowthBook-format payloads (``definition``) keep GrowthBook's own names;
- every timestamp is timezone-aware and normalised to UTC with millisecond precision (the precision of
  the ``DateTime64(3, 'UTC')`` columns): a naive timestamp is rejected, an offset is converted, sub-ms
  digits are truncated, and a time outside ClickHouse's DateTime64 range is rejected;
- every record carries ``schema_version`` (currently 1); changes are additive (new optional fields),
  and decoders ignore fields they do not know, so old consumers read new producers' records.

These Structs are the single source: JSON Schemas (schemas/json/) are generated from them
(``python -m schemas.generate``), the Arrow schemas in ``schemas.arrow`` mirror them and a test checks the
ClickHouse tables in sql/migrations/ against those.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from msgspec import Meta, Struct
from msgspec.structs import force_setattr

__all__ = [
    "COLLECTOR_SOURCE",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DeadLetterReason",
    "ExperimentDefinition",
    "ExperimentStatus",
    "Exposure",
    "ExposureSource",
    "FeatureDefinition",
    "FeatureStatus",
    "MetricEvent",
    "Override",
    "RecordKind",
    "RegistryChange",
    "RegistryKind",
    "RegistryPayload",
    "RegistryRecord",
    "registry_key",
    "utc_ms",
]

SCHEMA_VERSION: Final = 1
"""The ``schema_version`` written by this code. Bumped for every additive change to any record."""

# ClickHouse DateTime64 covers [1900-01-01, 2299-12-31]; anything outside would be stored wrapped. For a
# UTC datetime that is a range of years: comparing ``year`` costs ~0.05 µs, comparing with two aware
# datetimes ~0.2 µs (each side's offset is asked for), once per decoded record.
_MIN_YEAR: Final = 1900
_MAX_YEAR: Final = 2300


def utc_ms(value: datetime, field: str = "timestamp") -> datetime:
    """``value`` as a UTC datetime truncated to milliseconds; ValueError if naive or out of range."""
    if value.tzinfo is not UTC:
        if value.utcoffset() is None:
            raise ValueError(f"timestamp `{field}` must be timezone-aware (RFC 3339 with Z or an offset)")
        value = value.astimezone(UTC)
    if value.microsecond % 1000:
        value = value.replace(microsecond=value.microsecond - value.microsecond % 1000)
    if not _MIN_YEAR <= value.year < _MAX_YEAR:  # value is in UTC here
        raise ValueError(f"timestamp `{field}` is outside the storable range 1900-01-01..2299-12-31")
    return value


# --- shared field types ------------------------------------------------------------------------------

RecordId = Annotated[
    str, Meta(min_length=1, max_length=128, description="Unique id of this record, used for deduplication.")
]
UnitId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        description="The unit (value of the hash attribute, e.g. a user id); the Kafka key and partitioner.",
    ),
]
Key = Annotated[str, Meta(min_length=1, max_length=256)]
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 time with a zone; stored as UTC ms.")]
SchemaVersion = Annotated[
    int, Meta(ge=1, le=65535, description="Version of the record's schema; changes are additive.")
]
StringMap = dict[str, str]


class RecordKind(enum.StrEnum):
    """Which contract a record on Kafka was meant to follow."""

    EXPOSURE = "exposure"
    METRIC_EVENT = "metric_event"
    REGISTRY = "registry"
    UNKNOWN = "unknown"


class DeadLetterReason(enum.StrEnum):
    """Why a record was rejected. Codes are stable: dashboards, alerts and replays filter on them."""

    TOO_LARGE = "too_large"
    """Record larger than the configured limit (``XP_MAX_RECORD_BYTES``), measured after Kafka
    decompression and before decoding; its dead letter keeps only the first bytes of the original
    (``original_size`` and ``original_sha256`` describe the whole)."""
    INVALID_UTF8 = "invalid_utf8"
    """The bytes are not valid UTF-8."""
    INVALID_JSON = "invalid_json"
    """Not one well-formed JSON value (truncated, trailing bytes, empty message)."""
    SCHEMA_VIOLATION = "schema_violation"
    """Well-formed JSON of the wrong shape: wrong type, value out of range, unknown enum value."""
    MISSING_FIELD = "missing_field"
    """A required field is absent or null."""
    BAD_TIMESTAMP = "bad_timestamp"
    """A timestamp is not RFC 3339, has no time zone, or is outside the storable range."""
    TIMESTAMP_OUT_OF_BOUNDS = "timestamp_out_of_bounds"
    """A valid timestamp too far in the future or too late for the stream's configured bounds."""
    UNKNOWN_EXPERIMENT = "unknown_experiment"
    """The exposure names an experiment the registry does not know."""
    UNKNOWN_VARIATION = "unknown_variation"
    """The exposure names a variation the experiment does not have."""
    UNKNOWN_EVENT_NAME = "unknown_event_name"
    """The metric event's name is not in the metric catalog."""
    VALUE_NOT_FINITE = "value_not_finite"
    """A number is NaN, ±Infinity, or beyond float64 (e.g. ``1e999``)."""
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    """A metric event's ``value`` is finite but its magnitude exceeds ``XP_MAX_ABS_METRIC_VALUE``."""
    INTERNAL_ERROR = "internal_error"
    """An unexpected failure while handling the record (a bug); kept so that nothing is dropped."""


class ExposureSource(enum.StrEnum):
    """Who recorded the exposure."""

    SDK = "sdk"
    SERVICE = "service"
    LOADGEN = "loadgen"


# --- stream records ----------------------------------------------------------------------------------


# ``gc=False`` on the stream records: their fields are atomic values and str → str maps, so no reference
# cycle can go through them, and the collector need not track the ~100 k a worker decodes per batch.
class Exposure(Struct, frozen=True, kw_only=True, gc=False):
    """A unit was exposed to a variation of an experiment (topic ``xp.exposures``, key ``unit_id``)."""

    exposure_id: RecordId
    unit_id: UnitId
    hash_attribute: Annotated[
        Key, Meta(description="Attribute whose value is unit_id (GrowthBook hashAttribute), e.g. `id`.")
    ]
    experiment_key: Annotated[Key, Meta(description="GrowthBook experiment key (trackingKey).")]
    variation_id: Annotated[int, Meta(ge=0, le=65535, description="Index of the variation (GrowthBook).")]
    variation_key: Annotated[Key, Meta(description="Key of the variation (GrowthBook meta key or index).")]
    feature_key: Annotated[Key | None, Meta(description="Feature whose rule ran the experiment.")] = None
    bucket: Annotated[
        Annotated[float, Meta(ge=0.0, le=1.0)] | None,
        Meta(description="The unit's hash in [0, 1) that chose the variation (GrowthBook's `bucket`)."),
    ] = None
    overridden: Annotated[
        bool, Meta(description="The variation was forced by an override (QA/VIP); excluded from analysis.")
    ] = False
    source: ExposureSource
    attributes: Annotated[
        StringMap, Meta(description="Segmenting subset of the unit's attributes, values as strings.")
    ] = {}
    user_agent: Annotated[
        Annotated[str, Meta(max_length=1024)] | None, Meta(description="Client user agent, if known.")
    ] = None
    exposed_at: Annotated[Timestamp, Meta(description="When the unit was exposed (UTC).")]
    sent_at: Annotated[Timestamp | None, Meta(description="When the producer sent the record (UTC).")] = None
    schema_version: SchemaVersion = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Inline check of the common case (UTC, whole ms, in range: nothing to change); utc_ms otherwise.
        at = self.exposed_at
        if at.tzinfo is not UTC or at.microsecond % 1000 or not _MIN_YEAR <= at.year < _MAX_YEAR:
            force_setattr(self, "exposed_at", utc_ms(at, "exposed_at"))
        if self.sent_at is not None:
            force_setattr(self, "sent_at", utc_ms(self.sent_at, "sent_at"))


class MetricEvent(Struct, frozen=True, kw_only=True, gc=False):
    """Something a unit did that metrics count (topic ``xp.events``, key ``unit_id``)."""

    event_id: RecordId
    unit_id: UnitId
    event_name: Annotated[Key, Meta(description="Event name from the metric catalog, e.g. `purchase`.")]
    value: Annotated[
        float | None, Meta(description="Numeric value (e.g. revenue of a purchase); null if none.")
    ] = None
    properties: Annotated[StringMap, Meta(description="Free-form event properties, values as strings.")] = {}
    occurred_at: Annotated[Timestamp, Meta(description="When the event happened (UTC).")]
    sent_at: Annotated[Timestamp | None, Meta(description="When the producer sent the record (UTC).")] = None
    schema_version: SchemaVersion = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Inline check of the common case (UTC, whole ms, in range: nothing to change); utc_ms otherwise.
        at = self.occurred_at
        if at.tzinfo is not UTC or at.microsecond % 1000 or not _MIN_YEAR <= at.year < _MAX_YEAR:
            force_setattr(self, "occurred_at", utc_ms(at, "occurred_at"))
        if self.sent_at is not None:
            force_setattr(self, "sent_at", utc_ms(self.sent_at, "sent_at"))


COLLECTOR_SOURCE: Final = "http"
"""``source_topic`` of the dead letters of the HTTP collector (``POST /v1/events``)."""


class DeadLetter(Struct, frozen=True, kw_only=True):
    """A rejected record with why and where it came from (topic ``xp.dead-letters``). Bytes are base64."""

    dead_letter_id: RecordId
    reason: Annotated[DeadLetterReason, Meta(description="Reason code (stable).")]
    detail: Annotated[str, Meta(min_length=1, description="Human-readable explanation, e.g. the field path.")]
    record_kind: Annotated[RecordKind, Meta(description="Contract the record was meant to follow.")]
    source_topic: Annotated[
        str, Meta(min_length=1, description="Topic it was read from (or `http` for the collector).")
    ]
    source_partition: Annotated[
        Annotated[int, Meta(ge=0, le=2**31 - 1)] | None, Meta(description="Kafka partition.")
    ] = None
    source_offset: Annotated[
        Annotated[int, Meta(ge=0, le=2**63 - 1)] | None, Meta(description="Kafka offset.")
    ] = None
    original_key: Annotated[bytes | None, Meta(description="The record's Kafka key, as received.")] = None
    original: Annotated[
        bytes,
        Meta(
            description=(
                "The record's bytes as received; only the first bytes of a record over the size limit "
                "(then shorter than original_size)."
            )
        ),
    ]
    received_at: Annotated[Timestamp, Meta(description="When the stream rejected it (UTC).")]
    schema_version: SchemaVersion = SCHEMA_VERSION
    original_size: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(description="Length in bytes of the whole original (absent: len(original))."),
    ] = None
    original_sha256: Annotated[
        Annotated[str, Meta(pattern="^[0-9a-f]{64}$")] | None,
        Meta(description="SHA-256 (hex) of the whole original (absent: computed from original)."),
    ] = None

    def __post_init__(self) -> None:
        # Decoding validates the enum; this also guards records built in code (the table has no CHECK).
        force_setattr(self, "reason", DeadLetterReason(self.reason))
        if not self.detail:
            raise ValueError("`detail` must not be empty")
        force_setattr(self, "received_at", utc_ms(self.received_at, "received_at"))
        # Older producers do not send size and hash: the original is then whole.
        size = len(self.original) if self.original_size is None else self.original_size
        force_setattr(self, "original_size", size)
        if self.original_sha256 is None:
            force_setattr(self, "original_sha256", hashlib.sha256(self.original).hexdigest())
        if size < len(self.original):
            raise ValueError("`original_size` is smaller than the bytes in `original`")


# --- registry records --------------------------------------------------------------------------------


class RegistryKind(enum.StrEnum):
    """What a registry record describes."""

    EXPERIMENT = "experiment"
    FEATURE = "feature"
    OVERRIDE = "override"


class RegistryChange(enum.StrEnum):
    """What happened to the registry entry."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class ExperimentStatus(enum.StrEnum):
    """Life cycle of an experiment."""

    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"


class FeatureStatus(enum.StrEnum):
    """Life cycle of a feature."""

    ACTIVE = "active"
    ARCHIVED = "archived"


Version = Annotated[int, Meta(ge=1, le=2**32 - 1, description="Version of this entry, +1 per change.")]
GrowthBookJson = Annotated[
    dict[str, Any], Meta(description="The definition in GrowthBook's SDK payload format (its field names).")
]


class ExperimentDefinition(Struct, frozen=True, kw_only=True, tag="experiment", tag_field="kind"):
    """An experiment: GrowthBook experiment definition plus registry metadata."""

    key: Annotated[Key, Meta(description="Experiment key (GrowthBook `key`).")]
    version: Version
    status: ExperimentStatus
    name: Annotated[str | None, Meta(description="Human-readable name.")] = None
    definition: GrowthBookJson
    metadata: Annotated[
        dict[str, Any],
        Meta(description="Authoring metadata (owner, hypothesis, metrics, schedule) from the YAML source."),
    ] = {}


class FeatureDefinition(Struct, frozen=True, kw_only=True, tag="feature", tag_field="kind"):
    """A feature flag: GrowthBook feature definition (`defaultValue`, `rules`) plus metadata."""

    key: Annotated[Key, Meta(description="Feature key.")]
    version: Version
    status: FeatureStatus
    definition: GrowthBookJson


class Override(Struct, frozen=True, kw_only=True, tag="override", tag_field="kind"):
    """A unit forced into a variation (QA/VIP); its exposures are marked ``overridden``."""

    experiment_key: Key
    unit_id: UnitId
    variation_id: Annotated[int, Meta(ge=0, le=65535, description="Index of the forced variation.")]
    variation_key: Annotated[Key | None, Meta(description="Key of the forced variation, if known.")] = None
    expires_at: Annotated[Timestamp | None, Meta(description="When the override ends; null: never.")] = None
    reason: Annotated[str, Meta(description="Why the unit is overridden.")] = ""

    def __post_init__(self) -> None:
        if self.expires_at is not None:
            force_setattr(self, "expires_at", utc_ms(self.expires_at, "expires_at"))


RegistryPayload = ExperimentDefinition | FeatureDefinition | Override


def registry_key(payload: RegistryPayload) -> str:
    """The compaction key of a registry entry: ``experiment:K``, ``feature:K``, ``override:EXP:UNIT``."""
    if isinstance(payload, Override):
        return f"override:{payload.experiment_key}:{payload.unit_id}"
    kind = "experiment" if isinstance(payload, ExperimentDefinition) else "feature"
    return f"{kind}:{payload.key}"


_PAYLOAD_KIND: Final = {
    ExperimentDefinition: RegistryKind.EXPERIMENT,
    FeatureDefinition: RegistryKind.FEATURE,
    Override: RegistryKind.OVERRIDE,
}


class RegistryRecord(Struct, frozen=True, kw_only=True):
    """An audited change to the registry (compacted topic ``xp.registry``, Kafka key ``key``)."""

    record_id: RecordId
    kind: RegistryKind
    key: Annotated[str, Meta(min_length=1, max_length=600, description="Compaction key, see registry_key().")]
    change: RegistryChange
    changed_by: Annotated[str, Meta(min_length=1, description="Who made the change (user or service).")]
    changed_at: Annotated[Timestamp, Meta(description="When the change was made (UTC).")]
    payload: Annotated[
        RegistryPayload | None,
        Meta(description="The entry after the change; may be null for `deleted`."),
    ] = None
    schema_version: SchemaVersion = SCHEMA_VERSION

    def __post_init__(self) -> None:
        force_setattr(self, "changed_at", utc_ms(self.changed_at, "changed_at"))
        if self.payload is None:
            if self.change != RegistryChange.DELETED:
                raise ValueError(f"`payload` is required for a `{self.change}` change")
            return
        payload_kind = _PAYLOAD_KIND[type(self.payload)]
        if payload_kind != self.kind:
            raise ValueError(f"`kind` is {self.kind} but the payload is a {payload_kind}")
        expected_key = registry_key(self.payload)
        if self.key != expected_key:
            raise ValueError(f"`key` must be {expected_key!r} for this payload, got {self.key!r}")


RECORD_TYPES: Final[tuple[type[Struct], ...]] = (Exposure, MetricEvent, DeadLetter, RegistryRecord)
"""The top-level record types, one per topic."""
