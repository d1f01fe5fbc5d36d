-- stream_unit_exposures: each unit's first exposure per experiment; rebuilds the attribution state on start.
-- grain: experiment_key × unit_id   time: first_exposed_at   source: xp.unit_exposures (AggregatingMergeTree)
-- parameters: none
SELECT
    experiment_key,
    unit_id,
    min(first_exposed_at) AS first_exposed_at,
    argMinMerge(first_variation_id) AS variation_id,
    min(min_variation_id) AS min_variation_id,
    max(max_variation_id) AS max_variation_id
FROM xp.unit_exposures
GROUP BY experiment_key, unit_id
