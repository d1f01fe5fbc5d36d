-- Dashboards · every page: the registry as the stored audit history (folded oldest first into a snapshot).
-- grain: one row per registry change   time: changed_at   engine: xp.registry (ReplacingMergeTree)
SELECT record_id, kind, key, change, changed_by, changed_at, payload, schema_version
FROM xp.registry FINAL
ORDER BY changed_at, record_id
