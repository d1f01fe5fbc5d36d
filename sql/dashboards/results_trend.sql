-- Dashboards · results: lift and interval over time, per metric and variation, from the snapshots.
-- grain: metric × variation × computed_at   time: computed_at   engine: xp.results (ReplacingMergeTree)
SELECT
    computed_at, metric, role, method, variation_id, variation_name, units, mean,
    estimate, ci_low, ci_high, p_value, chance_to_win, significant
FROM xp.results
WHERE experiment_key = {experiment:String}
ORDER BY metric, variation_id, computed_at
