-- Activity (xp activity, the Activity page): platform usage per day from xp.usage_daily — API requests per
-- client key id and endpoint, exposures per client key id, dashboard page views per token id and page.
-- Key ids only (`key-` + 8 hex digits of the key's SHA-256): no key, token, unit or person.
-- grain: day × kind × subject   time: day   engine: xp.usage_daily (AggregatingMergeTree, summed here)
SELECT day, toString(kind) AS kind, subject, toUInt64(sum(count)) AS count
FROM xp.usage_daily
WHERE day >= toDate({since:DateTime64(3, 'UTC')}) AND day <= toDate({until:DateTime64(3, 'UTC')})
GROUP BY day, kind, subject
ORDER BY day, kind, subject
