-- Dashboards · realtime health: SRM p-value of one experiment at every results snapshot.
-- grain: computed_at   time: computed_at   engine: xp.results (ReplacingMergeTree)
SELECT
    computed_at,
    any(srm_p_value) AS srm_p_value
FROM xp.results
WHERE experiment_key = {experiment:String}
GROUP BY computed_at
ORDER BY computed_at
