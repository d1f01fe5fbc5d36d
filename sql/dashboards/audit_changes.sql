-- Dashboards · audit: the registry's change history (who changed which experiment or override, when).
-- grain: one row per registry change   time: changed_at   engine: xp.registry (ReplacingMergeTree)
SELECT
    changed_at, kind, key, change, changed_by, record_id,
    JSONExtractInt(ifNull(payload, '{}'), 'version') AS version,
    JSONExtractString(ifNull(payload, '{}'), 'status') AS status
FROM xp.registry FINAL
WHERE ({key:String} = '' OR key = {key:String} OR key LIKE concat('%:', {key:String}, '%'))
ORDER BY changed_at DESC, record_id
LIMIT {limit:UInt32}
