-- quality_rows_exposures: the exposures the GX suite checks: the newest `limit` rows of the window.
-- grain: one row per stored exposure row (not FINAL: duplicates that slipped in are what we look for)
-- time: exposed_at in [since, until)   engine: xp.exposures (ReplacingMergeTree)
-- experiment_variation = 'experiment_key:variation_id', checked against the registry's pairs.
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT
    exposure_id, unit_id, experiment_key, variation_id,
    concat(experiment_key, ':', toString(variation_id)) AS experiment_variation,
    bucket, overridden, exposed_at, ingested_at
FROM xp.exposures
WHERE exposed_at >= {since:DateTime64(3, 'UTC')} AND exposed_at < {until:DateTime64(3, 'UTC')}
ORDER BY exposed_at DESC
LIMIT {limit:UInt64}
