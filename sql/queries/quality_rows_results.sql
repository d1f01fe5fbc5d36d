-- quality_rows_results: results snapshots the GX suite checks (computed in the window).
-- grain: experiment × metric × variation × computed_at   time: computed_at in [since, until)
-- engine: xp.results (ReplacingMergeTree)
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT computed_at, experiment_key, metric, variation_id, units, mean, ci_low, ci_high, p_value,
       chance_to_win, srm_p_value
FROM xp.results
WHERE computed_at >= {since:DateTime64(3, 'UTC')} AND computed_at < {until:DateTime64(3, 'UTC')}
ORDER BY computed_at DESC
LIMIT {limit:UInt64}
