
WITH
    seen AS
    (
        SELECT unit_id, min(occurred_at) AS first_seen
        FROM xp.events
        WHERE occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')}
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            e.unit_id AS unit_id,
            e.event_name = {event_a:String} AND ({window_a_seconds:Float64} = 0 OR dateDiff('millisecond', s.first_seen, e.occurred_at) <= {window_a_seconds:Float64} * 1000) AS in_a,
            e.event_name = {event_b:String} AND ({window_b_seconds:Float64} = 0 OR dateDiff('millisecond', s.first_seen, e.occurred_at) <= {window_b_seconds:Float64} * 1000) AS in_b,
            if({property_a:String} = '', toString(e.value), e.properties[{property_a:String}]) AS text_a,
            if({property_a:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property_a:String}])) AS number_a,
            if({property_b:String} = '', toString(e.value), e.properties[{property_b:String}]) AS text_b,
            if({property_b:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property_b:String}])) AS number_b
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name IN ({event_a:String}, {event_b:String})
              AND occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')}
        ) AS e
        INNER JOIN seen AS s ON s.unit_id = e.unit_id
    ),
    per_unit AS
    (
        SELECT
            unit_id,
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
        GROUP BY unit_id
    )
SELECT
    toUInt64(count()) AS units,
    toUInt64(uniqExact(toDate(s.first_seen))) AS days_with_units,
    sum(u.a) AS sum_a,
    sum(u.a * u.a) AS sum_a_squares,
    sum(u.b) AS sum_b,
    sum(u.b * u.b) AS sum_b_squares,
    sum(u.a * u.b) AS cross_sum
FROM seen AS s
LEFT JOIN per_unit AS u ON u.unit_id = s.unit_id
SETTINGS join_use_nulls = 0
