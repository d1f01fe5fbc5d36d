-- quality_rows_dead_letters: the dead letters the GX suite checks: the newest `limit` rows of the window.
-- grain: one row per dead letter   time: received_at in [since, until)   engine: xp.dead_letters (MergeTree)
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT dead_letter_id, reason, record_kind, source_topic, received_at
FROM xp.dead_letters
WHERE received_at >= {since:DateTime64(3, 'UTC')} AND received_at < {until:DateTime64(3, 'UTC')}
ORDER BY received_at DESC
LIMIT {limit:UInt64}
