-- Activity (xp activity, the Activity page): platform usage, exposures recorded per day and source
-- (sdk, service, loadgen) and the experiments they name. Counts only: no unit id leaves the warehouse.
-- grain: day × source   time: exposed_at   engine: xp.exposures (ReplacingMergeTree, FINAL: a re-sent exposure counts once)
SELECT
    toDate(exposed_at) AS day,
    toString(source) AS source,
    toUInt64(count()) AS exposures,
    toUInt64(uniqExact(experiment_key)) AS experiments
FROM xp.exposures FINAL
WHERE exposed_at >= {since:DateTime64(3, 'UTC')}
  AND exposed_at < {until:DateTime64(3, 'UTC')}
GROUP BY day, source
ORDER BY day, source
