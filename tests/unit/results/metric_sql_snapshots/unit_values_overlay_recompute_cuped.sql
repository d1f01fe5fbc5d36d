
WITH
    changed AS
    (
        SELECT arrayJoin({recompute:Array(String)}) AS unit_id
    ),
    units AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,
               min(first_exposed_at) AS first_exposure,
               min(min_variation_id) != max(max_variation_id) AS multiple,
               max(overridden) != 0 AS overridden_
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String} AND unit_id IN (SELECT unit_id FROM changed)
        GROUP BY unit_id
    ),
    first_attributes AS
    (
        SELECT unit_id, argMin(attributes, exposed_at) AS attributes
        FROM xp.exposures
        WHERE experiment_key = {experiment:String} AND unit_id IN (SELECT unit_id FROM changed)
        GROUP BY unit_id
    ),
    matched AS
    (
        SELECT
            a.unit_id AS unit_id,
            a.variation_id AS variation_id,
            a.event_name AS event_name,
            toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay,
            ifNull(a.value, 0.) AS number,
            toUInt32(cityHash64(a.event_name, a.event_id) % 4294967296) AS key_hash
        FROM xp.attributed_events AS a FINAL
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {event_names:Array(String)}
          AND a.unit_id IN (SELECT unit_id FROM changed)
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, [toUInt32(countIf(event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[2] AND ({cell_windows:Array(Float64)}[2] = 0 OR delay <= {cell_windows:Array(Float64)}[2] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[3] AND ({cell_windows:Array(Float64)}[3] = 0 OR delay <= {cell_windows:Array(Float64)}[3] * 1000)))] AS counts, [sumIf(number, event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))] AS totals,
               groupArray(key_hash) AS folded
        FROM matched
        GROUP BY unit_id, variation_id
    ),
    pre AS
    (
        SELECT e.unit_id AS unit_id, e.event_name AS event_name, ifNull(e.value, 0.) AS number
        FROM
        (
            SELECT unit_id, event_name, occurred_at, value
            FROM xp.events FINAL
            WHERE event_name IN {covariate_events:Array(String)} AND unit_id IN (SELECT unit_id FROM changed)
        ) AS e
        INNER JOIN units AS u ON u.unit_id = e.unit_id
        WHERE e.occurred_at < u.first_exposure
          AND dateDiff('millisecond', e.occurred_at, u.first_exposure) <= {covariate_seconds:Float64} * 1000
    ),
    covariates AS
    (
        SELECT unit_id, [toUInt32(countIf(event_name = {covariate_events:Array(String)}[1])), toUInt32(countIf(event_name = {covariate_events:Array(String)}[2]))] AS counts, [sumIf(number, event_name = {covariate_events:Array(String)}[1]), sumIf(number, event_name = {covariate_events:Array(String)}[2])] AS totals
        FROM pre
        GROUP BY unit_id
    )
SELECT
    segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(t -> t * t, v)) AS squares,
    [sum(v[2] * v[4])] AS crosses,
    sumForEach(x) AS covariate_sums,
    sumForEach(arrayMap(t -> t * t, x)) AS covariate_squares,
    sumForEach(arrayMap((s, t) -> s * t, y, x)) AS covariate_crosses,
    sumForEach(h) AS covariate_units
FROM
(
    SELECT
        if({dimension:String} = '', '', attributes[{dimension:String}]) AS segment,
        variation_id,
        [toFloat64(counts[1] > 0), totals[1], toFloat64(counts[2]), toFloat64(counts[3])] AS v, [toFloat64(covariate_counts[1] > 0), covariate_totals[1], toFloat64(covariate_counts[2]), toFloat64(covariate_counts[1])] AS x, [v[1], v[2], v[3], v[4]] AS y, [toUInt64(covariate_counts[1] > 0), toUInt64(covariate_counts[1] > 0), toUInt64(covariate_counts[2] > 0), toUInt64(covariate_counts[1] > 0)] AS h
    FROM
    (
        SELECT e.variation_id AS variation_id, NOT e.multiple AND NOT e.overridden_ AS eligible,
               e.first_exposure AS first_exposed_at, s.attributes AS attributes, u.counts AS counts,
               u.totals AS totals, c.counts AS covariate_counts, c.totals AS covariate_totals
        FROM units AS e
        LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
        LEFT JOIN first_attributes AS s ON s.unit_id = e.unit_id
        LEFT JOIN covariates AS c ON c.unit_id = e.unit_id
    )
    WHERE eligible AND first_exposed_at >= {since:DateTime64(3, 'UTC')}
      AND first_exposed_at < {until:DateTime64(3, 'UTC')}
)
GROUP BY segment, variation_id
ORDER BY segment, variation_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
