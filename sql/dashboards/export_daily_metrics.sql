-- Dashboards · exports: daily aggregates of one experiment (xp.daily_metrics, ETL), one page of rows.
-- grain: experiment × metric × variation × day   time: day   engine: MergeTree
SELECT
    experiment_key, metric, variation_id, day, units, sum, sum_squares,
    if(units = 0, NULL, sum / units) AS mean, computed_at
FROM xp.daily_metrics
WHERE experiment_key = {experiment:String}
ORDER BY metric, variation_id, day
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
