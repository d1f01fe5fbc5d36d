-- Dashboards · realtime health: valid events and exposures stored per minute (ingest rate).
-- grain: kind × minute   time: minute (of ingested_at)   engine: xp.ingest_counts_minute (MV target, 0008)
-- Whole minutes from the minute of {since} on. Rows of one slot are summed (never assumed merged).
SELECT
    toDateTime64(minute, 3, 'UTC') AS minute,
    kind,
    toUInt64(sum(records)) AS records
FROM xp.ingest_counts_minute
WHERE minute >= toStartOfMinute(toDateTime({since:DateTime64(3, 'UTC')}, 'UTC'))
GROUP BY minute, kind
ORDER BY minute, kind
