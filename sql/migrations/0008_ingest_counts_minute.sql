-- 0008 ingest counter: valid records stored per minute, for the realtime health page (issue #7).
--
-- Contract:
--   xp.ingest_counts_minute  grain: kind × minute (of ingested_at)   time: minute   engine: AggregatingMergeTree
--
-- kind is 'events' (rows of xp.events) or 'exposures' (rows of xp.exposures). Filled at insert time by one
-- materialized view per source table, so it is exactly as "once" as those inserts (an insert skipped by
-- its dedup token does not reach the views). Read it with sum(records) GROUP BY kind, minute: rows of
-- one slot are combined at query time, never assumed merged. It replaces a scan of ingested_at over
-- the whole of xp.events (not in its sorting key) by a read of 60 rows per hour and kind.
-- A worker killed between a table's part and its view's part leaves the counter short: the stream
-- worker's start-up repair (sql/queries/stream_repair_ingest_counts.sql) adds the deficit, as for
-- xp.exposure_counts_minute.
-- Backfill: the last statement adds, for every minute, the raw count minus the counter's count (only
-- where the counter is short), so rows stored before this migration are counted once, and running it
-- again adds nothing.
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.

CREATE TABLE IF NOT EXISTS xp.ingest_counts_minute
(
    kind    LowCardinality(String),
    minute  DateTime('UTC'),
    records SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (kind, minute)
COMMENT 'Valid records stored per kind (events, exposures) and minute of ingested_at.';

CREATE MATERIALIZED VIEW IF NOT EXISTS xp.ingest_counts_minute_events_mv TO xp.ingest_counts_minute AS
SELECT
    'events' AS kind,
    toStartOfMinute(ingested_at) AS minute,
    toUInt64(count()) AS records
FROM xp.events
GROUP BY minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS xp.ingest_counts_minute_exposures_mv TO xp.ingest_counts_minute AS
SELECT
    'exposures' AS kind,
    toStartOfMinute(ingested_at) AS minute,
    toUInt64(count()) AS records
FROM xp.exposures
GROUP BY minute;

INSERT INTO xp.ingest_counts_minute (kind, minute, records)
SELECT r.kind, r.minute, r.records - ifNull(m.records, 0)
FROM
(
    SELECT 'events' AS kind, toStartOfMinute(ingested_at) AS minute, toUInt64(count()) AS records
    FROM xp.events
    GROUP BY minute
    UNION ALL
    SELECT 'exposures' AS kind, toStartOfMinute(ingested_at) AS minute, toUInt64(count()) AS records
    FROM xp.exposures
    GROUP BY minute
) AS r
LEFT JOIN
(
    SELECT kind, minute, toUInt64(sum(records)) AS records
    FROM xp.ingest_counts_minute
    GROUP BY kind, minute
) AS m ON r.kind = m.kind AND r.minute = m.minute
WHERE r.records > ifNull(m.records, 0)
