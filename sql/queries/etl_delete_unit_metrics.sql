-- etl_delete_unit_metrics: remove one experiment's xp.unit_metrics rows of a first-exposure day range.
-- grain: experiment × metric × unit   time: first_exposed_at on UTC days [since_day, until_day)
-- engine: MergeTree
-- A mutation made synchronous (mutations_sync = 2: wait until done, on every replica), so the insert that
-- follows never races it; on chDB and on a server the rows are gone when this returns.
-- Bound as Date, not DateTime64: ClickHouse 26.9 rewrites a DateTime64 parameter of a mutation into
-- _CAST('<unix seconds>', 'DateTime64…'), which fails to parse for early dates (e.g. 1970-01-01 → '0').
-- parameters: experiment String, since_day/until_day Date
ALTER TABLE xp.unit_metrics
DELETE WHERE experiment_key = {experiment:String}
    AND toDate(first_exposed_at, 'UTC') >= {since_day:Date}
    AND toDate(first_exposed_at, 'UTC') < {until_day:Date}
SETTINGS mutations_sync = 2
