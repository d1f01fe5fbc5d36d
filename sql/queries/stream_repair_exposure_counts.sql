-- stream_repair_exposure_counts: re-adds to xp.exposure_counts_minute what its materialized view missed
-- (a worker killed between the xp.exposures part and the view's part; see stream_repair_unit_exposures).
-- For every experiment × variation × minute with an exposure ingested since {since}: the raw count minus the
-- view's count, with the units of all raw rows (uniqExact states union idempotently). Idempotent.
-- grain: experiment_key × variation_id × minute (only slots short of their raw count)
-- source: xp.exposures, xp.exposure_counts_minute   parameters: since, until DateTime64(3, 'UTC')
-- until: raw rows loaded at or after it are left out (another worker's insert may be in flight: its
-- table part visible, its views' parts not yet; pipelines/state.repair_horizon)
INSERT INTO xp.exposure_counts_minute (experiment_key, variation_id, minute, exposures, units)
SELECT
    r.experiment_key,
    r.variation_id,
    r.minute,
    r.exposures - ifNull(m.exposures, 0),
    r.units
FROM
(
    SELECT
        experiment_key,
        variation_id,
        toStartOfMinute(exposed_at) AS minute,
        toUInt64(count()) AS exposures,
        uniqExactState(unit_id) AS units
    FROM xp.exposures
    WHERE ingested_at < {until:DateTime64(3, 'UTC')} AND (experiment_key, variation_id, toStartOfMinute(exposed_at)) IN (
        SELECT experiment_key, variation_id, toStartOfMinute(exposed_at)
        FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, variation_id, minute
) AS r
LEFT JOIN
(
    SELECT experiment_key, variation_id, minute, toUInt64(sum(exposures)) AS exposures
    FROM xp.exposure_counts_minute
    WHERE (experiment_key, variation_id, minute) IN (
        SELECT experiment_key, variation_id, toStartOfMinute(exposed_at)
        FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, variation_id, minute
) AS m ON r.experiment_key = m.experiment_key AND r.variation_id = m.variation_id AND r.minute = m.minute
WHERE r.exposures > ifNull(m.exposures, 0)
