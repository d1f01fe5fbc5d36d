-- 0001 event tables: the raw, validated and deduplicated records of the stream (issue #2, part 4).
--
-- Contract (outside checks count on it):
--   xp.exposures     grain: one row per unique valid exposure       time: exposed_at   engine: ReplacingMergeTree
--   xp.events        grain: one row per unique valid metric event   time: occurred_at  engine: ReplacingMergeTree
--   xp.dead_letters  grain: one row per rejected record (reason)    time: received_at  engine: MergeTree
--
-- Columns mirror schemas/records.py through schemas/arrow.py (tests/integration/test_schema_tables.py
-- checks them). Timestamps are DateTime64(3, 'UTC'). ingested_at is filled by the table.
-- non_replicated_deduplication_window keeps the last 1000 insert hashes/tokens per table, so a loader
-- that re-sends a batch with the same insert_deduplication_token after a crash inserts it only once.
-- ReplacingMergeTree (version ingested_at) is a second net: an exact re-send that slipped past the
-- stream's dedup collapses at merge time (exposure_id/event_id are in the sorting key).
-- Every statement is idempotent. The same SQL runs on chDB and a ClickHouse server.

CREATE DATABASE IF NOT EXISTS xp;

-- xp.exposures: grain one row per unique valid exposure, time column exposed_at, ReplacingMergeTree.
-- Sorted for "per experiment, per unit" (first exposure, variation per unit), pruned by month.
-- variation_name is filled by the stream's enrichment (issue #4), empty until then.
CREATE TABLE IF NOT EXISTS xp.exposures
(
    exposure_id    String,
    unit_id        String,
    hash_attribute LowCardinality(String),
    experiment_key LowCardinality(String),
    variation_id   UInt16,
    variation_key  LowCardinality(String),
    feature_key    Nullable(String),
    bucket         Nullable(Float64),
    overridden     Bool,
    source         LowCardinality(String),
    attributes     Map(String, String),
    user_agent     Nullable(String),
    exposed_at     DateTime64(3, 'UTC'),
    sent_at        Nullable(DateTime64(3, 'UTC')),
    schema_version UInt16,
    variation_name LowCardinality(String) DEFAULT '',
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(exposed_at)
ORDER BY (experiment_key, unit_id, exposed_at, exposure_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per unique valid exposure (schemas.records.Exposure).';

-- xp.events: grain one row per unique valid metric event, time column occurred_at, ReplacingMergeTree.
-- Sorted for "per event name, per unit" (unit-level metric aggregates, attribution), pruned by month.
CREATE TABLE IF NOT EXISTS xp.events
(
    event_id       String,
    unit_id        String,
    event_name     LowCardinality(String),
    value          Nullable(Float64),
    properties     Map(String, String),
    occurred_at    DateTime64(3, 'UTC'),
    sent_at        Nullable(DateTime64(3, 'UTC')),
    schema_version UInt16,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_name, unit_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per unique valid metric event (schemas.records.MetricEvent).';

-- xp.dead_letters: grain one row per rejected record, time column received_at, MergeTree.
-- original/original_key hold the raw bytes as received (read them back as binary, not text).
-- reason is never empty: it is a schemas.records.DeadLetterReason code. Deliberately no CHECK constraint:
-- chDB's streaming (ArrowStream) insert drops rows that violate one without raising, and a dead letter
-- must never be lost silently.
CREATE TABLE IF NOT EXISTS xp.dead_letters
(
    dead_letter_id   String,
    reason           LowCardinality(String),
    detail           String,
    record_kind      LowCardinality(String),
    source_topic     LowCardinality(String),
    source_partition Nullable(Int32),
    source_offset    Nullable(Int64),
    original_key     Nullable(String),
    original         String,
    received_at      DateTime64(3, 'UTC'),
    schema_version   UInt16,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_topic, reason, received_at, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per rejected record, with its reason code and original bytes (schemas.records.DeadLetter).';
