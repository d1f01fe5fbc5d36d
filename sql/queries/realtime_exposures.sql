-- realtime_exposures: exposures and unique units per experiment × variation × minute.
-- grain: experiment_key × variation_id × minute   time: minute   source: xp.exposure_counts_minute (AggregatingMergeTree)
-- parameters: since DateTime64(3, 'UTC')
SELECT
    experiment_key,
    variation_id,
    minute,
    sum(exposures) AS exposures,
    uniqExactMerge(units) AS units
FROM xp.exposure_counts_minute
WHERE minute >= toStartOfMinute({since:DateTime64(3, 'UTC')})
GROUP BY experiment_key, variation_id, minute
ORDER BY experiment_key, variation_id, minute
