-- 0005 ETL rollups: what `xp jobs run etl` (jobs/etl.py, issue #5) writes.
--
-- Contract:
--   xp.unit_metrics   grain: experiment × metric × unit (with its variation)   time: first_exposed_at  engine: MergeTree
--   xp.daily_metrics  grain: experiment × metric × variation × day             time: day               engine: MergeTree
--
-- Both are rebuilt per date range by the ETL: it deletes the range's rows (ALTER TABLE … DELETE with
-- mutations_sync = 2, synchronous on chDB and on a server) and inserts them again, so a re-run replaces
-- and never doubles. Plain MergeTree (no dedup, no version): the delete is the only thing that removes rows.
-- Event metrics only: a ratio metric is the ratio of two of these (numerator and denominator rows).
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.

-- xp.unit_metrics: one row per experiment × metric × unit first exposed to the experiment.
--   value / events: the metric over events in [first exposure, first exposure + the metric's window]
--   covariate / covariate_events: the same metric over [first exposure - covariate window, first exposure)
--   (the CUPED covariate; the window is XP_ETL_COVARIATE_DAYS, 14 days by default).
--   multiple_variations / overridden: the unit is excluded from analysis (eligible = 0) but kept here.
CREATE TABLE IF NOT EXISTS xp.unit_metrics
(
    experiment_key      LowCardinality(String),
    metric              LowCardinality(String),
    variation_id        UInt16,
    unit_id             String,
    first_exposed_at    DateTime64(3, 'UTC'),
    multiple_variations Bool,
    overridden          Bool,
    eligible            Bool,
    value               Float64,
    events              UInt64,
    covariate           Float64,
    covariate_events    UInt64,
    covariate_seconds   Float64,
    computed_at         DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(first_exposed_at)
ORDER BY (experiment_key, metric, variation_id, unit_id)
COMMENT 'ETL: per experiment × metric × unit, the metric after first exposure and its pre-exposure covariate.';

-- xp.daily_metrics: one row per experiment × metric × variation × day (UTC) with ≥ 1 counted event.
--   Over eligible units only (one variation, never overridden). A unit's day value is the metric over its
--   events of that day that count (after first exposure, within the window); units = units with such events.
CREATE TABLE IF NOT EXISTS xp.daily_metrics
(
    experiment_key LowCardinality(String),
    metric         LowCardinality(String),
    variation_id   UInt16,
    day            Date,
    units          UInt64,
    sum            Float64,
    sum_squares    Float64,
    computed_at    DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (experiment_key, metric, variation_id, day)
COMMENT 'ETL: per experiment × metric × variation × day: units with events, Σ value, Σ value².';
