-- 0012 platform usage per day (issue #20): assignment requests and exposures per client key, dashboard
-- page views per token — named by key id (`key-` + 8 hex digits of the key's SHA-256), never the key,
-- never a unit or a person (xpcore/usage.py, decision 0092).
--
-- Contract:
--   xp.usage_daily  grain: day × kind × subject   time: day (UTC)   engine: AggregatingMergeTree
--
-- kind: 'service_requests' (subject: key id + ' ' + endpoint), 'service_exposures' (subject: key id),
-- 'dashboard_views' (subject: token id + ' ' + page). Each process adds what it counted since its last
-- flush; read with sum(count) GROUP BY day, kind, subject. Counts of a process killed between two
-- flushes (at most a minute) are lost: usage is an operational view, not a ledger.
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.

CREATE TABLE IF NOT EXISTS xp.usage_daily
(
    day     Date,
    kind    LowCardinality(String),
    subject String,
    count   SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, kind, subject)
COMMENT 'Platform usage per UTC day: requests and exposures per client key id, dashboard views per token id.';
