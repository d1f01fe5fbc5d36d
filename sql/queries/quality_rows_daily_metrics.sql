-- quality_rows_daily_metrics: ETL daily rollup rows the GX suite checks (days touching the window).
-- grain: experiment × metric × variation × day   time: day   engine: xp.daily_metrics
-- parameters: since/until DateTime64(3, 'UTC'), limit UInt64
SELECT experiment_key, metric, variation_id, day, units, sum, sum_squares
FROM xp.daily_metrics
WHERE day >= toDate({since:DateTime64(3, 'UTC')}) AND day <= toDate({until:DateTime64(3, 'UTC')})
ORDER BY day DESC
LIMIT {limit:UInt64}
