-- Program view (xp program, the Program page): every experiment change with what the program needs.
-- grain: one row per registry change of an experiment   time: changed_at   engine: xp.registry (ReplacingMergeTree, FINAL)
-- Read whole (the registry is small) and folded in jobs/program.py: the last change gives the status,
-- owner (team), decision and primary metric; the history gives when it first ran and when it stopped.
SELECT
    key,
    change,
    changed_at,
    JSONExtractString(ifNull(payload, '{}'), 'status') AS status,
    JSONExtractString(ifNull(payload, '{}'), 'name') AS name,
    JSONExtractString(ifNull(payload, '{}'), 'metadata', 'owner') AS owner,
    JSONExtractString(ifNull(payload, '{}'), 'metadata', 'decision', 'outcome') AS decision,
    JSONExtractString(ifNull(payload, '{}'), 'metadata', 'decision', 'variation') AS decision_variation,
    JSONExtractString(ifNull(payload, '{}'), 'metadata', 'metrics', 'primary', 1) AS primary_metric,
    arrayMap(
        v -> JSONExtractString(v, 'key'),
        JSONExtractArrayRaw(ifNull(payload, '{}'), 'definition', 'meta')
    ) AS variation_keys
FROM xp.registry FINAL
WHERE kind = 'experiment'
ORDER BY changed_at, record_id
