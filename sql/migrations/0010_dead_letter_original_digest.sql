-- 0010 dead-letter originals: whole size and SHA-256 next to the (possibly truncated) original (issue #13).
--
-- Contract:
--   xp.dead_letters  grain: one row per rejected record (unchanged)   time: received_at   engine: MergeTree
--
-- A record over XP_MAX_RECORD_BYTES keeps only its first 4096 bytes in `original` (docs/decisions/0035):
-- `original_size` is the length of the whole original in bytes and `original_sha256` its SHA-256 (hex), so
-- `original_size > length(original)` marks a truncated original. Rows written before this migration had
-- whole originals: they are filled from `original` once (the mutation's WHERE matches nothing on a re-run).
-- Idempotent, the same SQL runs on chDB and a ClickHouse server.

ALTER TABLE xp.dead_letters
    ADD COLUMN IF NOT EXISTS original_size Int64 AFTER schema_version,
    ADD COLUMN IF NOT EXISTS original_sha256 String AFTER original_size;

ALTER TABLE xp.dead_letters
    UPDATE original_size = length(original), original_sha256 = lower(hex(SHA256(original)))
    WHERE original_sha256 = ''
    SETTINGS mutations_sync = 2;
