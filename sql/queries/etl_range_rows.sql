-- etl_range_rows: rows of the ETL tables in a run's range, for the run's summary.
-- grain: one row   time: first_exposed_at in [since, until) (unit_metrics), day in [since_day, until_day)
-- engine: xp.unit_metrics, xp.daily_metrics (MergeTree)
-- parameters: experiments Array(String), since/until DateTime64(3, 'UTC'), since_day/until_day Date
SELECT
    (
        SELECT count()
        FROM xp.unit_metrics
        WHERE experiment_key IN {experiments:Array(String)}
          AND first_exposed_at >= {since:DateTime64(3, 'UTC')}
          AND first_exposed_at < {until:DateTime64(3, 'UTC')}
    ) AS unit_rows,
    (
        SELECT count()
        FROM xp.daily_metrics
        WHERE experiment_key IN {experiments:Array(String)}
          AND day >= {since_day:Date}
          AND day < {until_day:Date}
    ) AS daily_rows
