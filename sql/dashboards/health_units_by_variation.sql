-- Dashboards · realtime health: units so far per variation of one experiment (sample-size progress, SRM).
-- grain: variation   time: minute (of exposed_at)   engine: xp.exposure_counts_minute (MV target)
-- Unique units exposed to each variation (merged uniqExact states: exact).
SELECT
    variation_id,
    toUInt64(uniqExactMerge(units)) AS units
FROM xp.exposure_counts_minute
WHERE experiment_key = {experiment:String}
GROUP BY variation_id
ORDER BY variation_id
