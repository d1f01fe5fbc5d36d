-- stream_recent_ids: record ids the stream loaded since a time; rebuilds its deduplication state on start.
-- grain: one row per loaded record   time: ingested_at   source: xp.exposures, xp.events, xp.dead_letters
-- parameters: since DateTime64(3, 'UTC')
SELECT 'exposure' AS kind, exposure_id AS id, ingested_at FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'event' AS kind, event_id AS id, ingested_at FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'dead_letter' AS kind, dead_letter_id AS id, ingested_at FROM xp.dead_letters WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
ORDER BY ingested_at
