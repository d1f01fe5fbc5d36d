-- 0013 export runs: one row per named export written by `xp jobs run export` (issue #18, jobs/exports).
--
-- Contract:
--   xp.export_runs   grain: one export of one run   time: started_at   engine: MergeTree
--
-- status: ok (the file is in place), failed (error has the one-line reason; no file was put). rows and
-- bytes are the file's (0 when failed). destination is the configured folder (a path or s3://bucket/prefix,
-- never credentials); file is the name written there. No personal data: names, counts and times only.
-- Written by every run (a shell, cron, a Kubernetes CronJob or the scheduler of `xp up`).
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.
CREATE TABLE IF NOT EXISTS xp.export_runs
(
    run_id      String,
    export_name LowCardinality(String),
    dataset     LowCardinality(String),
    format      LowCardinality(String),
    destination String,
    file        String,
    rows        UInt64,
    bytes       UInt64,
    started_at  DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    status      LowCardinality(String),
    error       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (export_name, started_at, run_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Scheduled exports: one row per named export per run of xp jobs run export.';
