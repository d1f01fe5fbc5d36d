-- stream_repair_ingest_counts: re-adds to xp.ingest_counts_minute what its materialized views missed
-- (a worker killed between the xp.events / xp.exposures part and the view's part, see
-- stream_repair_unit_exposures). For every kind × minute of ingested_at from the minute of {since} on:
-- the raw count minus the counter's count, only where the counter is short. Idempotent.
-- grain: kind × minute (only slots short of their raw count)
-- source: xp.events, xp.exposures, xp.ingest_counts_minute   parameters: since, until DateTime64(3, 'UTC')
-- until: raw rows loaded at or after it are left out (another worker's insert may be in flight: its
-- table part visible, its views' parts not yet; pipelines/state.repair_horizon)
INSERT INTO xp.ingest_counts_minute (kind, minute, records)
SELECT r.kind, r.minute, r.records - ifNull(m.records, 0)
FROM
(
    SELECT 'events' AS kind, toStartOfMinute(ingested_at) AS minute, toUInt64(count()) AS records
    FROM xp.events
    WHERE ingested_at >= toStartOfMinute({since:DateTime64(3, 'UTC')}) AND ingested_at < {until:DateTime64(3, 'UTC')}
    GROUP BY minute
    UNION ALL
    SELECT 'exposures' AS kind, toStartOfMinute(ingested_at) AS minute, toUInt64(count()) AS records
    FROM xp.exposures
    WHERE ingested_at >= toStartOfMinute({since:DateTime64(3, 'UTC')}) AND ingested_at < {until:DateTime64(3, 'UTC')}
    GROUP BY minute
) AS r
LEFT JOIN
(
    SELECT kind, minute, toUInt64(sum(records)) AS records
    FROM xp.ingest_counts_minute
    WHERE minute >= toStartOfMinute({since:DateTime64(3, 'UTC')})
    GROUP BY kind, minute
) AS m ON r.kind = m.kind AND r.minute = m.minute
WHERE r.records > ifNull(m.records, 0)
