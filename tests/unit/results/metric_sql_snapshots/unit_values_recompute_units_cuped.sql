
SELECT
    (SELECT count() FROM (SELECT unit_id FROM xp.attributed_events WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)} AND attributed_at >= {watermark:DateTime64(3, 'UTC')} AND unit_id NOT IN (SELECT unit_id FROM xp.unit_values WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String} AND version = {version:UInt64})
        UNION DISTINCT
        SELECT unit_id FROM xp.exposures WHERE experiment_key = {experiment:String} AND ingested_at >= {watermark:DateTime64(3, 'UTC')}
        UNION DISTINCT
        SELECT unit_id FROM xp.events WHERE event_name IN {covariate_events:Array(String)} AND ingested_at >= {watermark:DateTime64(3, 'UTC')})) AS units,
    (SELECT count() FROM xp.unit_values WHERE experiment_key = {experiment:String}
        AND plan_key = {plan_key:String} AND version = {version:UInt64}) AS folded,
    rows,
    max_occurred_at
FROM
(
    SELECT count() AS rows, max(occurred_at) AS max_occurred_at
    FROM xp.attributed_events
    WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)}
      AND attributed_at >= {watermark:DateTime64(3, 'UTC')}
)
