-- Dashboards · experiments list: units so far per experiment and variation (unique units exposed to it).
-- grain: experiment × variation   time: minute (of exposed_at)   engine: xp.exposure_counts_minute (MV target)
-- Merges the per-minute uniqExact states (exact, ~15× cheaper than grouping xp.unit_exposures by unit).
-- A unit exposed to two variations counts in both (such units are excluded from analysis, and rare).
SELECT
    experiment_key,
    variation_id,
    toUInt64(uniqExactMerge(units)) AS units,
    toDateTime64(min(minute), 3, 'UTC') AS first_exposed_at,
    toDateTime64(max(minute), 3, 'UTC') AS last_exposed_at
FROM xp.exposure_counts_minute
GROUP BY experiment_key, variation_id
ORDER BY experiment_key, variation_id
