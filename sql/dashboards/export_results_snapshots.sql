-- Dashboards · exports: every stored results snapshot of one experiment (xp.results), one page of rows.
-- grain: metric × variation × computed_at   time: computed_at   engine: xp.results (ReplacingMergeTree)
SELECT
    computed_at, experiment_key, metric, metric_type, role, method, variation_id, variation_key,
    variation_name, units, mean, estimate, ci_low, ci_high, p_value, chance_to_win, significant, error,
    srm_p_value, window_since, window_until
FROM xp.results
WHERE experiment_key = {experiment:String}
ORDER BY computed_at, metric, variation_id
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
