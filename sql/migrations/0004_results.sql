-- 0004 results snapshots (issue #5): what `xp jobs run stats` computed, versioned by computed_at.
--
--   xp.results  grain: experiment × metric × variation × computed_at  time: computed_at  engine: ReplacingMergeTree
--
-- One row per variation of each metric of each running experiment, per run of the stats job. Columns
-- carry the fields of the `xp results --format json` contract (docs/statistics.md, "Results") plus the
-- sufficient statistics they came from, so a snapshot can be re-analysed and trends are one GROUP BY
-- computed_at away. ReplacingMergeTree (version computed_at is in the key, so nothing collapses but an
-- exact re-insert of one run). Latest snapshot of an experiment:
--   SELECT * FROM xp.results WHERE experiment_key = 'x'
--     AND computed_at = (SELECT max(computed_at) FROM xp.results WHERE experiment_key = 'x')
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.

CREATE DATABASE IF NOT EXISTS xp;

CREATE TABLE IF NOT EXISTS xp.results
(
    computed_at      DateTime64(3, 'UTC'),
    experiment_key   LowCardinality(String),
    metric           LowCardinality(String),
    metric_type      LowCardinality(String),
    role             LowCardinality(String),
    method           LowCardinality(String),
    variation_id     UInt16,
    variation_key    String,
    variation_name   String,
    units            UInt64,
    mean             Nullable(Float64),
    estimate         Nullable(Float64),
    ci_low           Nullable(Float64),
    ci_high          Nullable(Float64),
    p_value          Nullable(Float64),
    chance_to_win    Nullable(Float64),
    significant      Bool,
    error            LowCardinality(String),
    srm_p_value      Nullable(Float64),
    window_since     DateTime64(3, 'UTC'),
    window_until     DateTime64(3, 'UTC'),
    sum              Float64,
    sum_squares      Float64,
    denominator_sum  Float64,
    denominator_sum_squares Float64,
    cross_sum        Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (experiment_key, metric, variation_id, computed_at)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Versioned results snapshots: one row per experiment, metric, variation and computed_at (xp jobs run stats).';
