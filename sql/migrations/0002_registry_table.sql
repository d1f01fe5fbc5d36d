-- 0002 registry table: the audit history of the experiment registry (topic xp.registry).
--
--   xp.registry  grain: one row per registry change (record_id)  time: changed_at  engine: ReplacingMergeTree
--
-- The topic is compacted (it keeps the latest record per key), so this table is where the full
-- who/when/what history lives. payload is the changed entry as compact JSON (null for some deletes),
-- in schemas.records' format, so JSONExtract* reads it. ReplacingMergeTree collapses the rows of a
-- re-read of the topic (record_id is in the sorting key). Small table: not partitioned.
-- Columns mirror schemas/arrow.py REGISTRY_SCHEMA. Idempotent, same SQL on chDB and a ClickHouse server.

CREATE DATABASE IF NOT EXISTS xp;

CREATE TABLE IF NOT EXISTS xp.registry
(
    record_id      String,
    kind           LowCardinality(String),
    key            String,
    change         LowCardinality(String),
    changed_by     String,
    changed_at     DateTime64(3, 'UTC'),
    payload        Nullable(String),
    schema_version UInt16,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (kind, key, changed_at, record_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Audit history of the registry: one row per change (schemas.records.RegistryRecord).';
