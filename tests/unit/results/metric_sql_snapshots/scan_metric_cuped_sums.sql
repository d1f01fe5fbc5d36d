
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
    properties AS
    (
        SELECT event_id, any(properties) AS properties
        FROM xp.events
        WHERE (event_name = {event_a:String} AND {property_a:String} != '')
        GROUP BY event_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name = {event_a:String} AND ({window_a_seconds:Float64} = 0 OR dateDiff('millisecond', a.first_exposed_at, a.occurred_at) <= {window_a_seconds:Float64} * 1000) AS in_a,
            if({property_a:String} = '', toString(a.value), p.properties[{property_a:String}]) AS text_a,
            if({property_a:String} = '', ifNull(a.value, 0.), toFloat64OrZero(p.properties[{property_a:String}])) AS number_a
        FROM xp.attributed_events AS a FINAL
        LEFT JOIN properties AS p ON p.event_id = a.event_id
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN ({event_a:String})
          AND a.occurred_at < {until:DateTime64(3, 'UTC')}
    ),
    per_unit AS
    (
        SELECT
            unit_id,
            variation_id,
            countIf(in_a) AS events_a,
            multiIf(
                {aggregation_a:String} = 'binary', toFloat64(countIf(in_a) > 0),
                {aggregation_a:String} = 'count', toFloat64(countIf(in_a)),
                {aggregation_a:String} = 'sum', sumIf(number_a, in_a),
                {aggregation_a:String} = 'unique', toFloat64(uniqExactIf(text_a, in_a)),
                0.) AS a
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    pre AS
    (
        SELECT
            e.unit_id AS unit_id,
            if({property_a:String} = '', toString(e.value), e.properties[{property_a:String}]) AS text_x,
            if({property_a:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property_a:String}])) AS number_x
        FROM
        (
            SELECT unit_id, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name = {event_a:String}
              AND occurred_at < {until:DateTime64(3, 'UTC')}
        ) AS e
        INNER JOIN eligible AS u ON u.unit_id = e.unit_id
        WHERE e.occurred_at < u.first_exposure
          AND dateDiff('millisecond', e.occurred_at, u.first_exposure) <= {covariate_seconds:Float64} * 1000
    ),
    covariates AS
    (
        SELECT
            unit_id,
            count() AS events_x,
            multiIf(
                {aggregation_a:String} = 'binary', toFloat64(count() > 0),
                {aggregation_a:String} = 'count', toFloat64(count()),
                {aggregation_a:String} = 'sum', sum(number_x),
                {aggregation_a:String} = 'unique', toFloat64(uniqExact(text_x)),
                0.) AS x
        FROM pre
        GROUP BY unit_id
    )
SELECT
    e.variation_id AS variation_id,
    toUInt64(count()) AS units,
    toUInt64(countIf(u.events_a > 0)) AS units_with_events,
    toUInt64(countIf(c.events_x > 0)) AS units_with_covariate,
    sum(u.a) AS sum_a,
    sum(u.a * u.a) AS sum_a_squares,
    sum(c.x) AS sum_x,
    sum(c.x * c.x) AS sum_x_squares,
    sum(u.a * c.x) AS cross_sum_ax
FROM eligible AS e
LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
LEFT JOIN covariates AS c ON c.unit_id = e.unit_id
GROUP BY e.variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
