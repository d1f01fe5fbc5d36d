-- stream_repair_unit_metric_state: re-adds to xp.unit_metric_state what its materialized view missed
-- (a worker killed between the xp.attributed_events part and the view's part; see stream_repair_unit_exposures).
-- For every experiment × variation × event name × unit with an attribution written since {since}: the raw
-- count and value sum minus the view's. Idempotent.
-- grain: experiment_key × variation_id × event_name × unit_id (only rows short of their raw count)
-- source: xp.attributed_events, xp.unit_metric_state   parameters: since, until DateTime64(3, 'UTC')
-- until: raw rows loaded at or after it are left out (another worker's insert may be in flight: its
-- table part visible, its views' parts not yet; pipelines/state.repair_horizon)
INSERT INTO xp.unit_metric_state (experiment_key, variation_id, event_name, unit_id, value_sum, event_count)
SELECT
    r.experiment_key,
    r.variation_id,
    r.event_name,
    r.unit_id,
    r.value_sum - ifNull(m.value_sum, 0.0),
    r.event_count - ifNull(m.event_count, 0)
FROM
(
    SELECT
        experiment_key,
        variation_id,
        event_name,
        unit_id,
        sum(ifNull(value, 0.0)) AS value_sum,
        toUInt64(count()) AS event_count
    FROM xp.attributed_events
    WHERE attributed_at < {until:DateTime64(3, 'UTC')} AND (experiment_key, variation_id, event_name, unit_id) IN (
        SELECT experiment_key, variation_id, event_name, unit_id
        FROM xp.attributed_events WHERE attributed_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, variation_id, event_name, unit_id
) AS r
LEFT JOIN
(
    SELECT
        experiment_key,
        variation_id,
        event_name,
        unit_id,
        sum(value_sum) AS value_sum,
        toUInt64(sum(event_count)) AS event_count
    FROM xp.unit_metric_state
    WHERE (experiment_key, variation_id, event_name, unit_id) IN (
        SELECT experiment_key, variation_id, event_name, unit_id
        FROM xp.attributed_events WHERE attributed_at >= {since:DateTime64(3, 'UTC')}
    )
    GROUP BY experiment_key, variation_id, event_name, unit_id
) AS m
    ON r.experiment_key = m.experiment_key AND r.variation_id = m.variation_id
    AND r.event_name = m.event_name AND r.unit_id = m.unit_id
WHERE r.event_count > ifNull(m.event_count, 0)
