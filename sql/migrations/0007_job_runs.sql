-- 0007 job runs: one row per run of a batch job started by the scheduler of `xp up` (xpstream/scheduler).
--
-- Contract:
--   xp.job_runs   grain: one run of one job   time: started_at   engine: MergeTree
--
-- outcome: ok (the job finished), failed (it raised; detail has the one-line error), skipped (the job is
-- not available yet, e.g. quality before issue #6 lands). success = (outcome = 'ok').
-- Fire times skipped because the previous run of the same job was still going are logged, not stored.
-- Runs of `xp jobs run …` from a shell, cron or a Kubernetes CronJob are not recorded here.
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.
CREATE TABLE IF NOT EXISTS xp.job_runs
(
    run_id        String,
    job           LowCardinality(String),
    scheduled_for DateTime64(3, 'UTC'),
    started_at    DateTime64(3, 'UTC'),
    finished_at   DateTime64(3, 'UTC'),
    success       Bool,
    outcome       LowCardinality(String),
    detail        String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (job, started_at, run_id)
COMMENT 'Scheduler of xp up: one row per run of a batch job (quality, stats, etl, lake).';
