-- 0014 unit values: the attributed rows folded into each stored unit row (issue #22, decision 0099).
--
-- Contract:
--   xp.unit_values  grain: experiment × plan fingerprint × unit (newest version, unchanged)   time: first_exposed_at   engine: ReplacingMergeTree
--
-- folded holds cityHash64(event_name, event_id) mod 2^32 of every xp.attributed_events row counted in the row's
-- counts and totals (the unit's rows in its variation, FINAL). A refresh adds the attributed rows stored
-- since its watermark to the stored counts and totals (O(new rows)) when none of their keys is in folded
-- and none repeats among them; otherwise (a re-send, a row already folded, a hash collision) it recomputes
-- the unit in full, as before
-- (a hash collision only costs that recomputation). Results never read the column. Rows written before this migration have an
-- empty folded: their plan fingerprints change with it (layout unit-values/2), so they are rebuilt once.
-- Idempotent, the same SQL runs on chDB and a ClickHouse server.

ALTER TABLE xp.unit_values
    ADD COLUMN IF NOT EXISTS folded Array(UInt32) AFTER covariate_totals;
