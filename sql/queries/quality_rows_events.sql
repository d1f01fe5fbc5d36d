-- quality_rows_events: the metric events the GX suite checks: the newest `limit` rows of the window.
-- grain: one row per stored event row (not FINAL)   time: occurred_at in [since, until)
-- engine: xp.events (ReplacingMergeTree)
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT event_id, unit_id, event_name, value, occurred_at, ingested_at
FROM xp.events
WHERE occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')}
ORDER BY occurred_at DESC
LIMIT {limit:UInt64}
