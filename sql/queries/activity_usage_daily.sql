-- Activity (xp activity, the Activity page): platform usage per day — from xp.usage_daily, API requests per
-- client key id and endpoint, exposures per client key id, dashboard page views per token id and page; from
-- xp.export_runs, exports run per export name and outcome (kind 'exports_run', subject 'NAME ok|failed').
-- Key ids only (`key-` + 8 hex digits of the key's SHA-256): no key, token, unit or person.
-- grain: day × kind × subject   time: day, started_at   engine: xp.usage_daily (AggregatingMergeTree,
-- summed here), xp.export_runs (MergeTree)
SELECT day, kind, subject, toUInt64(sum(n)) AS count
FROM
(
    SELECT day, toString(kind) AS kind, subject, count AS n
    FROM xp.usage_daily
    WHERE day >= toDate({since:DateTime64(3, 'UTC')}) AND day <= toDate({until:DateTime64(3, 'UTC')})
    UNION ALL
    SELECT toDate(started_at) AS day, 'exports_run' AS kind,
           concat(toString(export_name), ' ', toString(status)) AS subject, toUInt64(1) AS n
    FROM xp.export_runs
    WHERE started_at >= {since:DateTime64(3, 'UTC')} AND started_at < {until:DateTime64(3, 'UTC')}
)
GROUP BY day, kind, subject
ORDER BY day, kind, subject
