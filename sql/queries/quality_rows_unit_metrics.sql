-- quality_rows_unit_metrics: ETL rollup rows the GX suite checks (units first exposed in the window).
-- grain: experiment × metric × unit   time: first_exposed_at in [since, until)   engine: xp.unit_metrics
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT experiment_key, metric, variation_id, unit_id, first_exposed_at, eligible, multiple_variations,
       overridden, value, events, covariate_events, covariate_seconds
FROM xp.unit_metrics
WHERE first_exposed_at >= {since:DateTime64(3, 'UTC')} AND first_exposed_at < {until:DateTime64(3, 'UTC')}
ORDER BY first_exposed_at DESC
LIMIT {limit:UInt64}
