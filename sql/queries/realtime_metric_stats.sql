-- realtime_metric_stats: unit-level sufficient statistics per experiment × variation × metric event.
-- grain: experiment_key × variation_id × event_name   time: (all)   source: xp.unit_exposures, xp.unit_metric_state
-- Units: exposed units of the variation (first exposure's variation), excluding units seen in several
-- variations or overridden. Units without events count with value 0 (they are in `units`, not in the sums).
-- Per unit u: v_u = sum of values, c_u = number of events. Returned: units, sum_value = Σv, sum_value_sq = Σv²,
-- sum_count = Σc, sum_count_sq = Σc², sum_value_count = Σv·c (ratio metrics: value per event; delta method).
-- parameters: none
WITH
    eligible AS
    (
        SELECT experiment_key, unit_id, argMinMerge(first_variation_id) AS variation_id
        FROM xp.unit_exposures
        GROUP BY experiment_key, unit_id
        HAVING min(min_variation_id) = max(max_variation_id) AND max(overridden) = 0
    ),
    per_unit AS
    (
        SELECT experiment_key, variation_id, event_name, unit_id,
               sum(value_sum) AS v, toFloat64(sum(event_count)) AS c
        FROM xp.unit_metric_state
        GROUP BY experiment_key, variation_id, event_name, unit_id
    ),
    units AS
    (
        SELECT experiment_key, variation_id, toUInt64(count()) AS units
        FROM eligible
        GROUP BY experiment_key, variation_id
    ),
    sums AS
    (
        SELECT p.experiment_key AS experiment_key, p.variation_id AS variation_id, p.event_name AS event_name,
               toUInt64(count()) AS units_with_events,
               sum(p.v) AS sum_value, sum(p.v * p.v) AS sum_value_sq,
               sum(p.c) AS sum_count, sum(p.c * p.c) AS sum_count_sq, sum(p.v * p.c) AS sum_value_count
        FROM per_unit AS p
        INNER JOIN eligible AS e
            ON p.experiment_key = e.experiment_key AND p.unit_id = e.unit_id AND p.variation_id = e.variation_id
        GROUP BY p.experiment_key, p.variation_id, p.event_name
    )
SELECT s.experiment_key AS experiment_key, s.variation_id AS variation_id, s.event_name AS event_name,
       u.units AS units, s.units_with_events AS units_with_events,
       s.sum_value AS sum_value, s.sum_value_sq AS sum_value_sq,
       s.sum_count AS sum_count, s.sum_count_sq AS sum_count_sq, s.sum_value_count AS sum_value_count
FROM sums AS s
INNER JOIN units AS u ON s.experiment_key = u.experiment_key AND s.variation_id = u.variation_id
ORDER BY experiment_key, variation_id, event_name
