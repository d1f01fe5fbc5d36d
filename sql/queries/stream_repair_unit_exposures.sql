-- stream_repair_unit_exposures: re-adds to xp.unit_exposures what its materialized view missed.
-- An insert into xp.exposures is not atomic with its views: a worker killed between the table's part and the
-- view's part leaves exposures whose ids are loaded (so a restart deduplicates them) but whose first
-- exposure never reached the view. On start the worker compares, for every (experiment, unit) with an
-- exposure ingested since {since}, the raw count with the view's count and inserts the difference:
-- min/max/argMin over all raw rows are idempotent when merged, the count is the deficit. Idempotent.
-- grain: experiment_key × unit_id (only pairs short of their raw count)   source: xp.exposures, xp.unit_exposures
-- parameters: since, until DateTime64(3, 'UTC')
-- until: raw rows loaded at or after it are left out (another worker's insert may be in flight: its
-- table part visible, its views' parts not yet; pipelines/state.repair_horizon)
INSERT INTO xp.unit_exposures
    (experiment_key, unit_id, first_exposed_at, first_variation_id, min_variation_id, max_variation_id, exposures, overridden)
SELECT
    r.experiment_key,
    r.unit_id,
    r.first_exposed_at,
    r.first_variation_id,
    r.min_variation_id,
    r.max_variation_id,
    r.exposures - ifNull(m.exposures, 0),
    r.overridden
FROM
(
    SELECT
        experiment_key,
        unit_id,
        min(exposed_at) AS first_exposed_at,
        argMinState(variation_id, exposed_at) AS first_variation_id,
        min(variation_id) AS min_variation_id,
        max(variation_id) AS max_variation_id,
        toUInt64(count()) AS exposures,
        max(toUInt8(overridden)) AS overridden
    FROM xp.exposures
    WHERE ingested_at < {until:DateTime64(3, 'UTC')} AND (experiment_key, unit_id) IN (
        SELECT experiment_key, unit_id FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, unit_id
) AS r
LEFT JOIN
(
    SELECT experiment_key, unit_id, toUInt64(sum(exposures)) AS exposures
    FROM xp.unit_exposures
    WHERE (experiment_key, unit_id) IN (
        SELECT experiment_key, unit_id FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, unit_id
) AS m ON r.experiment_key = m.experiment_key AND r.unit_id = m.unit_id
WHERE r.exposures > ifNull(m.exposures, 0)
