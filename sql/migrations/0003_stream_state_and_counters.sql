-- 0003 stream state and realtime counters (issue #4).
--
--   xp.attributed_events        grain: one row per (event, experiment) attribution   time: occurred_at  engine: ReplacingMergeTree
--   xp.unit_exposures           grain: one row per (experiment, unit) after merge    time: first_exposed_at  engine: AggregatingMergeTree
--   xp.exposure_counts_minute   grain: experiment × variation × minute               time: minute       engine: AggregatingMergeTree
--   xp.unit_metric_state        grain: experiment × variation × event name × unit    time: (none)       engine: AggregatingMergeTree
--
-- Written by the stream worker: xp.attributed_events (pipelines/attribution.py decides the pairs).
-- Everything else is filled by materialized views at insert time, so it is exactly as "once" as the
-- inserts into xp.exposures / xp.attributed_events (an insert skipped by its dedup token does not reach
-- the views). Read aggregate states with the -Merge combinators or the named queries in sql/queries/
-- (realtime_exposures, realtime_metric_stats): rows are combined at query time, never assumed merged.
-- Idempotent; the same SQL runs on chDB and a ClickHouse server.

CREATE TABLE IF NOT EXISTS xp.attributed_events
(
    event_id         String,
    unit_id          String,
    experiment_key   LowCardinality(String),
    variation_id     UInt16,
    event_name       LowCardinality(String),
    value            Nullable(Float64),
    occurred_at      DateTime64(3, 'UTC'),
    first_exposed_at DateTime64(3, 'UTC'),
    attributed_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(attributed_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (experiment_key, event_name, unit_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per metric event attributed to one experiment (first exposure <= occurred_at <= first exposure + window).';

-- Unit-level exposure state: first exposure, its variation, and whether the unit saw several variations
-- (min_variation_id != max_variation_id: excluded from analysis), or was overridden.
CREATE TABLE IF NOT EXISTS xp.unit_exposures
(
    experiment_key     LowCardinality(String),
    unit_id            String,
    first_exposed_at   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    first_variation_id AggregateFunction(argMin, UInt16, DateTime64(3, 'UTC')),
    min_variation_id   SimpleAggregateFunction(min, UInt16),
    max_variation_id   SimpleAggregateFunction(max, UInt16),
    exposures          SimpleAggregateFunction(sum, UInt64),
    overridden         SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY (experiment_key, unit_id)
COMMENT 'Per experiment and unit: first exposure, its variation, several variations seen, overridden.';

CREATE MATERIALIZED VIEW IF NOT EXISTS xp.unit_exposures_mv TO xp.unit_exposures AS
SELECT
    experiment_key,
    unit_id,
    min(exposed_at) AS first_exposed_at,
    argMinState(variation_id, exposed_at) AS first_variation_id,
    min(variation_id) AS min_variation_id,
    max(variation_id) AS max_variation_id,
    toUInt64(count()) AS exposures,
    max(toUInt8(overridden)) AS overridden
FROM xp.exposures
GROUP BY experiment_key, unit_id;

-- Realtime health: exposures and unique units per experiment × variation × minute of exposed_at.
-- uniqExact so that counters equal a recount; unique units over a range: uniqExactMerge(units).
CREATE TABLE IF NOT EXISTS xp.exposure_counts_minute
(
    experiment_key LowCardinality(String),
    variation_id   UInt16,
    minute         DateTime('UTC'),
    exposures      SimpleAggregateFunction(sum, UInt64),
    units          AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (experiment_key, variation_id, minute)
COMMENT 'Exposures and unique units per experiment, variation and minute.';

CREATE MATERIALIZED VIEW IF NOT EXISTS xp.exposure_counts_minute_mv TO xp.exposure_counts_minute AS
SELECT
    experiment_key,
    variation_id,
    toStartOfMinute(exposed_at) AS minute,
    toUInt64(count()) AS exposures,
    uniqExactState(unit_id) AS units
FROM xp.exposures
GROUP BY experiment_key, variation_id, minute;

-- Unit-level metric state: per experiment × variation × event name × unit, the sum of values and the
-- number of attributed events. realtime_metric_stats aggregates it into sufficient statistics.
CREATE TABLE IF NOT EXISTS xp.unit_metric_state
(
    experiment_key LowCardinality(String),
    variation_id   UInt16,
    event_name     LowCardinality(String),
    unit_id        String,
    value_sum      SimpleAggregateFunction(sum, Float64),
    event_count    SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (experiment_key, variation_id, event_name, unit_id)
COMMENT 'Per experiment, variation, metric event and unit: sum of values and count of attributed events.';

CREATE MATERIALIZED VIEW IF NOT EXISTS xp.unit_metric_state_mv TO xp.unit_metric_state AS
SELECT
    experiment_key,
    variation_id,
    event_name,
    unit_id,
    sum(ifNull(value, 0.0)) AS value_sum,
    toUInt64(count()) AS event_count
FROM xp.attributed_events
GROUP BY experiment_key, variation_id, event_name, unit_id;
