-- Dashboards · realtime health: exposures per minute by variation of one experiment.
-- grain: variation × minute   time: minute (of exposed_at)   engine: xp.exposure_counts_minute (MV target)
SELECT
    toDateTime64(minute, 3, 'UTC') AS minute,
    variation_id,
    toUInt64(sum(exposures)) AS exposures
FROM xp.exposure_counts_minute
WHERE experiment_key = {experiment:String}
  AND minute >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY minute, variation_id
ORDER BY minute, variation_id
