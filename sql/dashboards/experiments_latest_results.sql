-- Dashboards · experiments list and comparison: the latest xp.results snapshot of every experiment.
-- grain: experiment × metric × variation (latest computed_at per experiment)   time: computed_at
-- engine: xp.results (ReplacingMergeTree; one run's rows share computed_at)
SELECT
    computed_at, experiment_key, metric, metric_type, role, method, variation_id, variation_key,
    variation_name, units, mean, estimate, ci_low, ci_high, p_value, chance_to_win, significant, error,
    srm_p_value, sum, sum_squares
FROM xp.results
WHERE (experiment_key, computed_at) IN
(
    SELECT experiment_key, max(computed_at) FROM xp.results GROUP BY experiment_key
)
ORDER BY experiment_key, role, metric, variation_id
