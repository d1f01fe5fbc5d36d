-- 0015 the materialized views' target tables deduplicate a re-sent block too.
--
-- Contract (grains unchanged):
--   xp.unit_exposures, xp.exposure_counts_minute, xp.unit_metric_state   (0003)   engine: AggregatingMergeTree
--   xp.ingest_counts_minute                                               (0008)   engine: AggregatingMergeTree
--
-- An insert that its dedup token (or, without a token, its block hash) makes the source table skip still
-- feeds that table's materialized views on chDB 4.4 (ClickHouse 25.x): without a deduplication window of
-- their own, the views' targets counted a re-sent batch twice (xp.unit_metric_state's sums and
-- xp.ingest_counts_minute's record counts; the min/uniq states were unharmed). The block a view writes
-- carries an id derived from the source block's (token or hash) and the view, so with a window the target
-- drops exactly the repeats: distinct source blocks whose view output happens to be identical are all kept
-- (tests/integration/test_warehouse_workflows.py and test_schema_tables.py check both). A Replicated*
-- table (cluster install) deduplicates by replicated_deduplication_window, on by default.
-- Idempotent, the same SQL runs on chDB and a ClickHouse server.

ALTER TABLE xp.unit_exposures MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE xp.exposure_counts_minute MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE xp.unit_metric_state MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE xp.ingest_counts_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
