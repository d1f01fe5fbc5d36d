-- quality_newest: when each checked table last received a row (loaded before `until`), for freshness.
-- grain: table_name   time: ingested_at (stream tables), computed_at (rollups, results)
-- engine: reads xp.exposures, xp.events, xp.unit_metrics, xp.daily_metrics, xp.results.
-- rows = 0 means the table holds no row loaded before `until` (newest and oldest are then meaningless).
-- oldest: when the stream tables first received a row (batch tables cannot be late before that).
-- parameters: until DateTime64(3, 'UTC')
SELECT 'exposures' AS table_name, count() AS rows, max(ingested_at) AS newest, min(ingested_at) AS oldest
FROM xp.exposures WHERE ingested_at < {until:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'events' AS table_name, count() AS rows, max(ingested_at) AS newest, min(ingested_at) AS oldest
FROM xp.events WHERE ingested_at < {until:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'unit_metrics' AS table_name, count() AS rows, max(computed_at) AS newest, min(computed_at) AS oldest
FROM xp.unit_metrics WHERE computed_at < {until:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'daily_metrics' AS table_name, count() AS rows, max(computed_at) AS newest, min(computed_at) AS oldest
FROM xp.daily_metrics WHERE computed_at < {until:DateTime64(3, 'UTC')}
UNION ALL
SELECT 'results' AS table_name, count() AS rows, max(computed_at) AS newest, min(computed_at) AS oldest
FROM xp.results WHERE computed_at < {until:DateTime64(3, 'UTC')}
