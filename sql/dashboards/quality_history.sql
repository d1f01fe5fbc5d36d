-- Dashboards · data quality: the outcome of every check run, newest first (xp.dq_results, issue #6).
-- grain: one row per check outcome per run   time: run_at   engine: MergeTree
SELECT
    run_id, run_at, check, experiment, table_name, success, severity, observed, threshold, detail
FROM xp.dq_results
WHERE run_at >= {since:DateTime64(3, 'UTC')}
ORDER BY run_at DESC, check
LIMIT {limit:UInt32}
