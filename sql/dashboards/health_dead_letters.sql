-- Dashboards · realtime health: dead letters per minute by reason code, still dead only (not replayed:
-- xp.dead_letter_replays, migration 0011).
-- grain: reason × minute   time: received_at   engine: xp.dead_letters (MergeTree)
SELECT
    toDateTime64(toStartOfMinute(received_at), 3, 'UTC') AS minute,
    reason,
    toUInt64(count()) AS records
FROM xp.dead_letters
WHERE received_at >= {since:DateTime64(3, 'UTC')}
  AND dead_letter_id NOT IN (SELECT dead_letter_id FROM xp.dead_letter_replays)
GROUP BY minute, reason
ORDER BY minute, reason
