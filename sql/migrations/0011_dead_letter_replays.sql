-- 0011 dead-letter replays: which dead letters were re-produced to their source topic, when, by which run
-- (issue #21).
--
-- Contract:
--   xp.dead_letter_replays  grain: one row per replayed dead letter per replay run   time: replayed_at
--                           engine: MergeTree
--
-- `xp stream replay-dead-letters` writes one row per dead letter it produced, after the producer
-- confirmed delivery. A dead letter with a row here is "replayed": the next replay skips it (unless
-- --again), and the dead-letter rate of the health page and the quality job count only the dead letters
-- without one (still dead). If the replayed bytes are rejected again, the worker writes a new dead letter
-- (a new dead_letter_id), which is still dead and replayable after the next fix.
-- outcome: `produced` (delivered to source_topic). Idempotent, the same SQL runs on chDB and a server.

CREATE TABLE IF NOT EXISTS xp.dead_letter_replays
(
    dead_letter_id String,
    replay_id      String,
    source_topic   LowCardinality(String),
    reason         LowCardinality(String),
    outcome        LowCardinality(String),
    replayed_at    DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(replayed_at)
ORDER BY (dead_letter_id, replayed_at)
COMMENT 'One row per dead letter re-produced to its source topic by xp stream replay-dead-letters.';
