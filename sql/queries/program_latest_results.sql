-- Program view: the newest results snapshot (xp jobs run stats) of each named experiment, every metric.
-- grain: experiment × metric × variation (one computed_at per experiment)   time: computed_at   engine: xp.results
-- {experiments}: the finished experiments' keys. A snapshot holds a few metrics × variations per experiment.
SELECT
    experiment_key,
    computed_at,
    metric,
    metric_type,
    role,
    method,
    variation_id,
    variation_key,
    units,
    mean,
    estimate,
    ci_low,
    ci_high,
    p_value,
    significant,
    error,
    window_since,
    window_until,
    sum,
    sum_squares,
    denominator_sum,
    denominator_sum_squares,
    cross_sum
FROM xp.results
WHERE experiment_key IN {experiments:Array(String)}
  AND (experiment_key, computed_at) IN (
      SELECT experiment_key, max(computed_at)
      FROM xp.results
      WHERE experiment_key IN {experiments:Array(String)}
      GROUP BY experiment_key
  )
ORDER BY experiment_key, metric, variation_id
