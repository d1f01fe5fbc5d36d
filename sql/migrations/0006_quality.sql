-- 0006 data quality (issue #6): what `xp jobs run quality` (quality/run.py) stores.
--
-- Contract:
--   xp.dq_results  grain: one check outcome per run   time: run_at  engine: MergeTree
--   xp.alerts      grain: one alert state change      time: at      engine: MergeTree
--
-- xp.dq_results: observed and threshold are JSON-encoded values (number, string, object or null):
--   severity is 'error' or 'warning': experiment / table_name are NULL when the check is not about one.
-- xp.alerts: the same rows are produced to the Kafka topic xp.alerts. fingerprint = check|experiment|table
--   is stable across runs: state is 'firing' or 'resolved'. Open alerts = fingerprints whose latest row
--   (by at) is 'firing': the quiet period is measured from the latest 'firing' row of a fingerprint.
-- Idempotent: the same SQL runs on chDB and a ClickHouse server.

CREATE TABLE IF NOT EXISTS xp.dq_results
(
    run_id     String,
    run_at     DateTime64(3, 'UTC'),
    check      LowCardinality(String),
    experiment Nullable(String),
    table_name Nullable(String),
    success    Bool,
    severity   LowCardinality(String),
    observed   String,
    threshold  String,
    detail     String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (run_at, check)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Data quality: one row per check outcome per run of xp jobs run quality.';

CREATE TABLE IF NOT EXISTS xp.alerts
(
    alert_id    String,
    fingerprint String,
    state       LowCardinality(String),
    check       LowCardinality(String),
    experiment  Nullable(String),
    table_name  Nullable(String),
    detail      String,
    run_id      String,
    at          DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (fingerprint, at)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Data-quality alerts: one row per state change (firing, resolved) of a check fingerprint.';
