
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
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name AS event_name,
            toUInt64(toUnixTimestamp64Milli(a.occurred_at)) AS at_ms
        FROM xp.attributed_events AS a FINAL
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {steps:Array(String)}
          AND a.occurred_at < {until:DateTime64(3, 'UTC')}
          AND ({window_seconds:Float64} = 0 OR dateDiff('millisecond', a.first_exposed_at, a.occurred_at) <= {window_seconds:Float64} * 1000)
    ),
    levels AS
    (
        SELECT unit_id, variation_id, toUInt8(multiIf(NOT (countIf(event_name = {steps:Array(String)}[1]) > 0), 0, NOT (countIf(event_name = {steps:Array(String)}[2]) > 0), 1, 2)) AS level
        FROM matched
        GROUP BY unit_id, variation_id
    )
SELECT
    e.variation_id AS variation_id,
    toUInt64(count()) AS units,
    [toUInt64(countIf(level >= 1)), toUInt64(countIf(level >= 2))] AS reached
FROM eligible AS e
LEFT JOIN levels AS l ON l.unit_id = e.unit_id AND l.variation_id = e.variation_id
GROUP BY variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
