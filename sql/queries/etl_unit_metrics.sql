-- etl_unit_metrics: insert one metric of one experiment into xp.unit_metrics for the units first exposed
-- in [since, until).
-- grain: experiment × metric × unit   time: first_exposed_at (units), occurred_at (events)
-- engine: reads xp.unit_exposures (AggregatingMergeTree, merged here) and xp.events (ReplacingMergeTree,
--         read FINAL so a re-sent event counts once); writes xp.unit_metrics (MergeTree).
--
-- Every unit first exposed in the range gets a row, with its first exposure's variation, including the
-- units analysis excludes (seen in several variations, or overridden): flagged, eligible = 0.
-- Events come from the raw xp.events, not xp.attributed_events, so events the stream could not attribute
-- (exposure arriving after the hold time) count too, and pre-exposure events exist for the covariate.
--   value:     events with first_exposed_at <= occurred_at <= first_exposed_at + window_seconds (0: no window)
--   covariate: events with first_exposed_at - covariate_seconds <= occurred_at < first_exposed_at
-- aggregated as binary (1 if ≥ 1 event) | count | sum (of the value field) | unique (distinct values),
-- the value field being the event's `value` (property = '') or properties[property]. No event: 0.
-- parameters: experiment String, metric String, event_name String, aggregation String, property String,
--             window_seconds Float64, covariate_seconds Float64, since/until DateTime64(3, 'UTC'),
--             computed_at DateTime64(3, 'UTC')
INSERT INTO xp.unit_metrics
(
    experiment_key, metric, variation_id, unit_id, first_exposed_at, multiple_variations, overridden,
    eligible, value, events, covariate, covariate_events, covariate_seconds, computed_at
)
WITH
    units AS
    (
        SELECT
            unit_id,
            argMinMerge(first_variation_id) AS variation_id,
            min(first_exposed_at) AS first_exposure,
            min(min_variation_id) != max(max_variation_id) AS multiple_variations,
            max(overridden) = 1 AS is_overridden
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String}
        GROUP BY unit_id
        HAVING first_exposure >= {since:DateTime64(3, 'UTC')}
           AND first_exposure < {until:DateTime64(3, 'UTC')}
    ),
    matched AS
    (
        SELECT
            u.unit_id AS unit_id,
            e.occurred_at >= u.first_exposure
                AND ({window_seconds:Float64} = 0
                     OR dateDiff('millisecond', u.first_exposure, e.occurred_at) <= {window_seconds:Float64} * 1000)
                AS post,
            e.occurred_at < u.first_exposure
                AND dateDiff('millisecond', e.occurred_at, u.first_exposure) <= {covariate_seconds:Float64} * 1000
                AS pre,
            if({property:String} = '', toString(e.value), e.properties[{property:String}]) AS text,
            if({property:String} = '', ifNull(e.value, 0.), toFloat64OrZero(e.properties[{property:String}])) AS number
        FROM
        (
            SELECT unit_id, occurred_at, value, properties
            FROM xp.events FINAL
            WHERE event_name = {event_name:String}
        ) AS e
        INNER JOIN units AS u ON u.unit_id = e.unit_id
    ),
    per_unit AS
    (
        SELECT
            unit_id,
            toUInt64(countIf(post)) AS events,
            multiIf(
                {aggregation:String} = 'binary', toFloat64(countIf(post) > 0),
                {aggregation:String} = 'count', toFloat64(countIf(post)),
                {aggregation:String} = 'sum', sumIf(number, post),
                {aggregation:String} = 'unique', toFloat64(uniqExactIf(text, post)),
                0.) AS value,
            toUInt64(countIf(pre)) AS covariate_events,
            multiIf(
                {aggregation:String} = 'binary', toFloat64(countIf(pre) > 0),
                {aggregation:String} = 'count', toFloat64(countIf(pre)),
                {aggregation:String} = 'sum', sumIf(number, pre),
                {aggregation:String} = 'unique', toFloat64(uniqExactIf(text, pre)),
                0.) AS covariate
        FROM matched
        GROUP BY unit_id
    )
SELECT
    {experiment:String},
    {metric:String},
    u.variation_id,
    u.unit_id,
    u.first_exposure,
    u.multiple_variations,
    u.is_overridden,
    NOT (u.multiple_variations OR u.is_overridden),
    p.value,
    p.events,
    p.covariate,
    p.covariate_events,
    {covariate_seconds:Float64},
    {computed_at:DateTime64(3, 'UTC')}
FROM units AS u
LEFT JOIN per_unit AS p ON p.unit_id = u.unit_id
SETTINGS join_use_nulls = 0
