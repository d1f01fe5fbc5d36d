-- 0009 unit values: per-unit metric values kept up to date for results (issue #5, decision 0028).
--
-- Contract:
--   xp.unit_values        grain: experiment × plan fingerprint × unit (newest version)   time: first_exposed_at   engine: ReplacingMergeTree
--   xp.unit_values_state  grain: experiment × plan fingerprint (newest refreshed_at)      time: refreshed_at       engine: ReplacingMergeTree
--
-- Written only by jobs/unit_values/__init__.py (refresh before every results computation). A unit's row holds
-- what the results query computes per unit: its variation (of the first exposure), whether it is in the
-- analysis population (eligible = one variation and never overridden), its first exposure time, the
-- attributes of its first exposure (segments), and one slot per distinct (event, window) cell of the
-- plan: counts (attributed events after first exposure within the window) and totals (sum of their
-- values, only for cells a sum metric reads). covariate_counts and covariate_totals hold the CUPED
-- covariate cells (raw events of one name in the window before first exposure), empty without CUPED.
-- plan_key is the fingerprint of the cells (jobs.unit_values.UnitValuesPlan.key): a changed metric
-- definition is a new key and a full build, and the old key's rows are never read again.
-- A recomputed unit is a new row with a higher version, so read with FINAL (or argMax by version).
-- unit_values_state keeps, per experiment and plan, the watermark (rows stored at or after it are
-- not folded in yet), the newest occurred_at folded in, and the version of the last refresh.
-- Idempotent, the same SQL runs on chDB and a ClickHouse server.

CREATE TABLE IF NOT EXISTS xp.unit_values
(
    experiment_key      LowCardinality(String),
    plan_key            LowCardinality(String),
    unit_id             String,
    variation_id        UInt16,
    eligible            Bool,
    multiple_variations Bool,
    overridden          Bool,
    first_exposed_at    DateTime64(3, 'UTC'),
    attributes          Map(String, String),
    counts              Array(UInt32),
    totals              Array(Float64),
    covariate_counts    Array(UInt32),
    covariate_totals    Array(Float64),
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (experiment_key, plan_key, unit_id)
COMMENT 'Per experiment, plan fingerprint and unit: variation, eligibility, first exposure, per-cell metric values (newest version).';

CREATE TABLE IF NOT EXISTS xp.unit_values_state
(
    experiment_key  LowCardinality(String),
    plan_key        LowCardinality(String),
    plan            String,
    watermark       DateTime64(3, 'UTC'),
    max_occurred_at DateTime64(3, 'UTC'),
    version         UInt64,
    built_at        DateTime64(3, 'UTC'),
    refreshed_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (experiment_key, plan_key)
COMMENT 'Per experiment and plan fingerprint: the refresh watermark of xp.unit_values and its newest occurred_at.';
