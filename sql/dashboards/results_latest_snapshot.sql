-- Dashboards · results: the newest stored snapshot of one experiment for one method (what the page shows
-- at once, docs/decisions/0020-results-page-serves-snapshots.md).
-- grain: metric × variation (one computed_at)   time: computed_at   engine: xp.results (ReplacingMergeTree)
SELECT
    computed_at, metric, metric_type, role, method, variation_id, variation_key, variation_name, units,
    mean, estimate, ci_low, ci_high, p_value, chance_to_win, significant, error, srm_p_value,
    window_since, window_until
FROM xp.results
WHERE experiment_key = {experiment:String}
  AND method = {method:String}
  AND computed_at = (
      SELECT max(computed_at) FROM xp.results
      WHERE experiment_key = {experiment:String} AND method = {method:String}
  )
ORDER BY metric, variation_id
