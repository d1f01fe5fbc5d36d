-- Activity (xp activity, the Activity page): every registry change with the fields the roll-ups need.
-- grain: one row per registry change   time: changed_at   engine: xp.registry (ReplacingMergeTree, FINAL)
-- Read whole (the registry is small): a change before the window still says who owns an experiment and
-- when it started. owner / status of experiments, experiment_key / expires_at of overrides from payload.
SELECT
    kind,
    key,
    change,
    changed_at,
    JSONExtractString(ifNull(payload, '{}'), 'status') AS status,
    JSONExtractString(ifNull(payload, '{}'), 'metadata', 'owner') AS owner,
    JSONExtractString(ifNull(payload, '{}'), 'experiment_key') AS experiment_key,
    JSONExtractString(ifNull(payload, '{}'), 'expires_at') AS expires_at
FROM xp.registry FINAL
ORDER BY changed_at, record_id
