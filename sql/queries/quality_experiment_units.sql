-- quality_experiment_units: per experiment and first variation, the units behind the health checks.
-- grain: experiment_key × variation_id (of each unit's first exposure)   time: first_exposed_at
-- engine: reads xp.unit_exposures (AggregatingMergeTree, merged here) and xp.attributed_events.
-- Units first exposed in [since, until):
--   units                 every such unit
--   eligible_units        seen in one variation and never overridden (the analysis population)
--   srm_units             never overridden (assignment followed the configured weights): the SRM counts
--   multiple_units        seen in more than one variation
--   overridden_units      overridden at least once
--   units_without_events  no attributed event before `until`
-- parameters: since DateTime64(3, 'UTC'), until DateTime64(3, 'UTC')
WITH units AS
(
    SELECT
        experiment_key,
        unit_id,
        min(first_exposed_at) AS first_exposed,
        argMinMerge(first_variation_id) AS variation_id,
        min(min_variation_id) != max(max_variation_id) AS multiple,
        max(overridden) = 1 AS overridden
    FROM xp.unit_exposures
    GROUP BY experiment_key, unit_id
    HAVING first_exposed >= {since:DateTime64(3, 'UTC')} AND first_exposed < {until:DateTime64(3, 'UTC')}
),
active AS
(
    SELECT DISTINCT experiment_key, unit_id
    FROM xp.attributed_events
    WHERE occurred_at < {until:DateTime64(3, 'UTC')}
)
SELECT
    units.experiment_key AS experiment_key,
    units.variation_id AS variation_id,
    count() AS units,
    countIf(NOT multiple AND NOT overridden) AS eligible_units,
    countIf(NOT overridden) AS srm_units,
    countIf(multiple) AS multiple_units,
    countIf(overridden) AS overridden_units,
    countIf((units.experiment_key, units.unit_id) NOT IN (SELECT experiment_key, unit_id FROM active))
        AS units_without_events
FROM units
GROUP BY experiment_key, variation_id
ORDER BY experiment_key, variation_id
