-- Dashboards · realtime health: valid events and exposures stored per minute (ingest rate).
-- grain: kind × minute   time: ingested_at   engine: xp.events, xp.exposures (ReplacingMergeTree)
SELECT toDateTime64(toStartOfMinute(ingested_at), 3, 'UTC') AS minute, 'events' AS kind, toUInt64(count()) AS records
FROM xp.events
WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
GROUP BY minute
UNION ALL
SELECT toDateTime64(toStartOfMinute(ingested_at), 3, 'UTC') AS minute, 'exposures' AS kind, toUInt64(count()) AS records
FROM xp.exposures
WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
GROUP BY minute
ORDER BY minute, kind
