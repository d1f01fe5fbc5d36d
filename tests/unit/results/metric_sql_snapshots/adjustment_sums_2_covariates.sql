
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
           OR (event_name = {event_b:String} AND {property_b:String} != '')
        GROUP BY event_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name = {event_a:String} AND ({window_a_seconds:Float64} = 0 OR dateDiff('millisecond', a.first_exposed_at, a.occurred_at) <= {window_a_seconds:Float64} * 1000) AS in_a,
            a.event_name = {event_b:String} AND ({window_b_seconds:Float64} = 0 OR dateDiff('millisecond', a.first_exposed_at, a.occurred_at) <= {window_b_seconds:Float64} * 1000) AS in_b,
            if({property_a:String} = '', toString(a.value), p.properties[{property_a:String}]) AS text_a,
            if({property_a:String} = '', ifNull(a.value, 0.), toFloat64OrZero(p.properties[{property_a:String}])) AS number_a,
            if({property_b:String} = '', toString(a.value), p.properties[{property_b:String}]) AS text_b,
            if({property_b:String} = '', ifNull(a.value, 0.), toFloat64OrZero(p.properties[{property_b:String}])) AS number_b
        FROM xp.attributed_events AS a FINAL
        LEFT JOIN properties AS p ON p.event_id = a.event_id
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN ({event_a:String}, {event_b:String})
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
                0.) AS a,
            multiIf(
                {aggregation_b:String} = 'binary', toFloat64(countIf(in_b) > 0),
                {aggregation_b:String} = 'count', toFloat64(countIf(in_b)),
                {aggregation_b:String} = 'sum', sumIf(number_b, in_b),
                {aggregation_b:String} = 'unique', toFloat64(uniqExactIf(text_b, in_b)),
                0.) AS b
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    strata AS
    (
        SELECT unit_id, argMin(arrayMap(d -> attributes[d], {strata:Array(String)}), exposed_at) AS cell
        FROM xp.exposures
        WHERE experiment_key = {experiment:String} AND length({strata:Array(String)}) > 0
        GROUP BY unit_id
    ),
    pre AS
    (
        SELECT
            e.unit_id AS unit_id,
            e.event_name AS event_name,
            if({property_x1:String} = '', toString(e.value), e.properties[{property_x1:String}]) AS text_1,
            if({property_x1:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property_x1:String}])) AS number_1,
            if({property_x2:String} = '', toString(e.value), e.properties[{property_x2:String}]) AS text_2,
            if({property_x2:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property_x2:String}])) AS number_2
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name IN ({event_x1:String}, {event_x2:String})
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
            [
            multiIf(
                {aggregation_x1:String} = 'binary', toFloat64(countIf(event_name = {event_x1:String}) > 0),
                {aggregation_x1:String} = 'count', toFloat64(countIf(event_name = {event_x1:String})),
                {aggregation_x1:String} = 'sum', sumIf(number_1, event_name = {event_x1:String}),
                {aggregation_x1:String} = 'unique', toFloat64(uniqExactIf(text_1, event_name = {event_x1:String})),
                0.),
            multiIf(
                {aggregation_x2:String} = 'binary', toFloat64(countIf(event_name = {event_x2:String}) > 0),
                {aggregation_x2:String} = 'count', toFloat64(countIf(event_name = {event_x2:String})),
                {aggregation_x2:String} = 'sum', sumIf(number_2, event_name = {event_x2:String}),
                {aggregation_x2:String} = 'unique', toFloat64(uniqExactIf(text_2, event_name = {event_x2:String})),
                0.)
            ] AS xs
        FROM pre
        GROUP BY unit_id
    ),
    unit_rows AS
    (
        SELECT
            e.variation_id AS variation_id,
            if(length(s.cell) = 0, arrayWithConstant(length({strata:Array(String)}), ''), s.cell) AS cell,
            u.a AS y,
            if(length(c.xs) = 0, arrayWithConstant(2, 0.), c.xs) AS x
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN strata AS s ON s.unit_id = e.unit_id
        LEFT JOIN covariates AS c ON c.unit_id = e.unit_id
    )
SELECT
    variation_id,
    cell,
    toUInt64(count()) AS units,
    sum(y) AS sum_y,
    sum(y * y) AS sum_y_squares,
    sumForEach(x) AS sum_x,
    sumForEach(arrayFlatten(arrayMap(p -> arrayMap(q -> p * q, x), x))) AS sum_xx,
    sumForEach(arrayMap(t -> y * t, x)) AS sum_yx
FROM unit_rows
GROUP BY variation_id, cell
ORDER BY variation_id, cell
SETTINGS join_use_nulls = 0
