-- quality_dead_letter_reasons: the most frequent dead-letter reasons of the window (detail of the rate check).
-- grain: reason   time: received_at in [since, until)   engine: xp.dead_letters (MergeTree)
-- parameters: since/until DateTime64(3, 'UTC')
SELECT reason, count() AS n
FROM xp.dead_letters
WHERE received_at >= {since:DateTime64(3, 'UTC')} AND received_at < {until:DateTime64(3, 'UTC')}
  AND dead_letter_id NOT IN (SELECT dead_letter_id FROM xp.dead_letter_replays)  -- still dead: not replayed (0011)
GROUP BY reason
ORDER BY n DESC, reason
LIMIT 3
