-- quality_volume: rows per window of event time, for the volume, dead-letter and row-count checks.
-- grain: table_name × bucket   time: exposed_at / occurred_at / received_at
-- engine: reads xp.exposures, xp.events (ReplacingMergeTree, not FINAL: what analysts see) and xp.dead_letters.
-- bucket 0 is the checked window [until - step, until); bucket i the i-th window before it.
-- parameters: start DateTime64(3, 'UTC') (= until - step × (trailing + 1)), until DateTime64(3, 'UTC'),
--             step_ms Int64 (window length in milliseconds)
SELECT table_name, bucket, count() AS rows
FROM
(
    SELECT 'exposures' AS table_name,
           intDiv(toUnixTimestamp64Milli({until:DateTime64(3, 'UTC')}) - toUnixTimestamp64Milli(exposed_at) - 1,
                  {step_ms:Int64}) AS bucket
    FROM xp.exposures
    WHERE exposed_at >= {start:DateTime64(3, 'UTC')} AND exposed_at < {until:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'events' AS table_name,
           intDiv(toUnixTimestamp64Milli({until:DateTime64(3, 'UTC')}) - toUnixTimestamp64Milli(occurred_at) - 1,
                  {step_ms:Int64}) AS bucket
    FROM xp.events
    WHERE occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT 'dead_letters' AS table_name,
           intDiv(toUnixTimestamp64Milli({until:DateTime64(3, 'UTC')}) - toUnixTimestamp64Milli(received_at) - 1,
                  {step_ms:Int64}) AS bucket
    FROM xp.dead_letters
    WHERE received_at >= {start:DateTime64(3, 'UTC')} AND received_at < {until:DateTime64(3, 'UTC')}
      AND dead_letter_id NOT IN (SELECT dead_letter_id FROM xp.dead_letter_replays)  -- still dead: not replayed (0011)
)
GROUP BY table_name, bucket
ORDER BY table_name, bucket
