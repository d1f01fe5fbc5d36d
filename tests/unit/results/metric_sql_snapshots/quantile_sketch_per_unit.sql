
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
        WHERE event_name = {event_a:String} AND {property_a:String} != ''
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
            multiIf(
                {aggregation_a:String} = 'binary', toFloat64(countIf(in_a) > 0),
                {aggregation_a:String} = 'count', toFloat64(countIf(in_a)),
                {aggregation_a:String} = 'sum', sumIf(number_a, in_a),
                {aggregation_a:String} = 'unique', toFloat64(uniqExactIf(text_a, in_a)),
                0.) AS a
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    observations AS
    (
        SELECT e.unit_id AS unit_id, e.variation_id AS variation_id, u.a AS value
        FROM eligible AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
    ),
    sketch AS
    (
        SELECT
            variation_id,
            quantilesTDigest({nu:Float64}, {level_low:Float64}, {level_high:Float64})(value) AS levels
        FROM observations
        GROUP BY variation_id
    ),
    per_cluster AS
    (
        SELECT
            o.variation_id AS variation_id,
            toFloat64(countIf(o.value <= s.levels[1])) AS below,
            toFloat64(count()) AS events
        FROM observations AS o
        INNER JOIN sketch AS s ON s.variation_id = o.variation_id
        GROUP BY o.variation_id, o.unit_id
    )
SELECT
    c.variation_id AS variation_id,
    toUInt64(sum(c.events)) AS n,
    toUInt64(count()) AS units,
    toFloat64(any(s.levels)[1]) AS quantile_value,
    toFloat64(any(s.levels)[2]) AS quantile_lower,
    toFloat64(any(s.levels)[3]) AS quantile_upper,
    sum(c.below) AS below_sum,
    sum(c.below * c.below) AS below_sum_squares,
    sum(c.events) AS events_sum,
    sum(c.events * c.events) AS events_sum_squares,
    sum(c.below * c.events) AS cross_sum
FROM per_cluster AS c
INNER JOIN sketch AS s ON s.variation_id = c.variation_id
GROUP BY c.variation_id
ORDER BY variation_id
SETTINGS join_use_nulls = 0
