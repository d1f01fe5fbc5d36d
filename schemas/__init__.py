"""Event contracts: typed records (msgspec), their Kafka codec, Arrow schemas and JSON Schemas.

- :mod:`schemas.records`: one frozen Struct per record kind (the single source of truth);
- :mod:`schemas.codec`: compact-JSON encode/decode with a size limit and coded failures;
- :mod:`schemas.arrow`: Arrow schemas of the ClickHouse tables and ``to_arrow`` converters
  (imports pyarrow: import it where tables are built, not on hot CLI paths);
- :mod:`schemas.generate`: writes/checks the JSON Schema files in ``schemas/json/``.

See docs/schemas.md.
"""

from schemas.codec import (
    DEFAULT_MAX_ABS_METRIC_VALUE,
    DEFAULT_MAX_RECORD_BYTES,
    TRUNCATED_ORIGINAL_BYTES,
    DecodedBatch,
    RecordCodec,
    RecordError,
    make_dead_letter,
)
from schemas.records import (
    RECORD_TYPES,
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

__all__ = [
    "DEFAULT_MAX_ABS_METRIC_VALUE",
    "DEFAULT_MAX_RECORD_BYTES",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "TRUNCATED_ORIGINAL_BYTES",
    "DeadLetter",
    "DeadLetterReason",
    "DecodedBatch",
    "ExperimentDefinition",
    "ExperimentStatus",
    "Exposure",
    "ExposureSource",
    "FeatureDefinition",
    "FeatureStatus",
    "MetricEvent",
    "Override",
    "RecordCodec",
    "RecordError",
    "RecordKind",
    "RegistryChange",
    "RegistryKind",
    "RegistryPayload",
    "RegistryRecord",
    "make_dead_letter",
    "registry_key",
]
