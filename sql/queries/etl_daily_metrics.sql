-- etl_daily_metrics: insert one metric of one experiment into xp.daily_metrics for the days (UTC) of
-- event time in [since_day, until_day).
-- grain: experiment × metric × variation × day   time: occurred_at (events)
-- engine: reads xp.unit_exposures (AggregatingMergeTree, merged here) and xp.events (ReplacingMergeTree,
--         FINAL); writes xp.daily_metrics (MergeTree).
--
-- Population: eligible units (one variation, never overridden), any first exposure. An event counts when
-- first_exposed_at <= occurred_at <= first_exposed_at + window_seconds (0: no window), as in
-- etl_unit_metrics. Per unit and day the counted events are aggregated (binary | count | sum | unique,
-- value field `value` or properties[property]); per variation and day: units (with ≥ 1 counted event),
-- sum, sum_squares of those day values. Days without counted events have no row.
-- parameters: experiment String, metric String, event_name String, aggregation String, property String,
--             window_seconds Float64, since_day/until_day Date, computed_at DateTime64(3, 'UTC')
INSERT INTO xp.daily_metrics (experiment_key, metric, variation_id, day, units, sum, sum_squares, computed_at)
WITH
    units AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id, min(first_exposed_at) AS first_exposure
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String}
        GROUP BY unit_id
        HAVING min(min_variation_id) = max(max_variation_id) AND max(overridden) = 0
    ),
    matched AS
    (
        SELECT
            u.unit_id AS unit_id,
            u.variation_id AS variation_id,
            toDate(e.occurred_at, 'UTC') AS event_day,
            if({property:String} = '', toString(e.value), e.properties[{property:String}]) AS text,
            if({property:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property:String}])) AS number
        FROM
        (
            SELECT unit_id, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name = {event_name:String}
              AND occurred_at >= toDateTime64({since_day:Date}, 3, 'UTC')
              AND occurred_at < toDateTime64({until_day:Date}, 3, 'UTC')
        ) AS e
        INNER JOIN units AS u ON u.unit_id = e.unit_id
        WHERE e.occurred_at >= u.first_exposure
          AND ({window_seconds:Float64} = 0
               OR dateDiff('millisecond', u.first_exposure, e.occurred_at) <= {window_seconds:Float64} * 1000)
    ),
    per_unit_day AS
    (
        SELECT
            variation_id,
            event_day,
            unit_id,
            multiIf(
                {aggregation:String} = 'binary', 1.,
                {aggregation:String} = 'count', toFloat64(count()),
                {aggregation:String} = 'sum', sum(number),
                {aggregation:String} = 'unique', toFloat64(uniqExact(text)),
                0.) AS value
        FROM matched
        GROUP BY variation_id, event_day, unit_id
    )
SELECT
    {experiment:String},
    {metric:String},
    variation_id,
    event_day,
    toUInt64(count()),
    sum(value),
    sum(value * value),
    {computed_at:DateTime64(3, 'UTC')}
FROM per_unit_day
GROUP BY variation_id, event_day
