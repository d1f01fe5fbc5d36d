
WITH
    eligible AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,
               min(first_exposed_at) AS first_exposure
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String}
        GROUP BY unit_id
        HAVING NOT (min(min_variation_id) != max(max_variation_id)) AND NOT (max(overridden) != 0)
           AND first_exposure >= {since:DateTime64(3, 'UTC')}
           AND first_exposure < {until:DateTime64(3, 'UTC')}
    ),
    segments AS
    (
        SELECT unit_id, argMin(attributes[{dimension:String}], exposed_at) AS segment
        FROM xp.exposures
        WHERE experiment_key = {experiment:String} AND {dimension:String} != ''
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name AS event_name,
            toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay,
            ifNull(a.value, 0.) AS number
        FROM xp.attributed_events AS a FINAL
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {event_names:Array(String)}
          AND a.occurred_at < {until:DateTime64(3, 'UTC')}
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, countIf(event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000)) AS c1, countIf(event_name = {cell_events:Array(String)}[2] AND ({cell_windows:Array(Float64)}[2] = 0 OR delay <= {cell_windows:Array(Float64)}[2] * 1000)) AS c2
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    valued AS
    (
        SELECT s.segment AS segment, e.variation_id AS variation_id, toFloat64(c1 > 0) AS v1, toFloat64(c2) AS v2
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN segments AS s ON s.unit_id = e.unit_id
    )
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    [sum(v1), sum(v2)] AS sums,
    [sum(v1 * v1), sum(v2 * v2)] AS squares,
    CAST([], 'Array(Float64)') AS crosses
FROM valued
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0
