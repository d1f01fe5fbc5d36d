-- etl_delete_daily_metrics: remove one experiment's xp.daily_metrics rows of a day range.
-- grain: experiment × metric × variation × day   time: day in [since_day, until_day)   engine: MergeTree
-- A mutation made synchronous (mutations_sync = 2), see etl_delete_unit_metrics.
-- parameters: experiment String, since_day/until_day Date
ALTER TABLE xp.daily_metrics
DELETE WHERE experiment_key = {experiment:String}
    AND day >= {since_day:Date}
    AND day < {until_day:Date}
SETTINGS mutations_sync = 2
