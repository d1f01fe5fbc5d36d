-- stream_recent_ids: record ids the stream loaded since a time; rebuilds its deduplication state on start.
-- grain: one row per loaded record   time: ingested_at   source: xp.exposures, xp.events, xp.dead_letters
-- parameters: since DateTime64(3, 'UTC')
-- The ORDER BY is the whole union's (a subquery): after a bare UNION ALL it would order the last SELECT
-- only, and a batch's ids came back in thousands of short runs (2.2 M ids: 157 k runs, ~45 s to restore).
SELECT kind, id, ingested_at
FROM
(
    SELECT 'exposure' AS kind, exposure_id AS id, ingested_at FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'event' AS kind, event_id AS id, ingested_at FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'dead_letter' AS kind, dead_letter_id AS id, ingested_at FROM xp.dead_letters WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
)
ORDER BY ingested_at, kind
