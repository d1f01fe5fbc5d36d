
WITH
    moved AS
    (
        SELECT unit_id FROM xp.exposures WHERE experiment_key = {experiment:String} AND ingested_at >= {watermark:DateTime64(3, 'UTC')}
    ),
    fresh AS
    (
        SELECT a.unit_id AS unit_id, a.variation_id AS variation_id, a.event_name AS event_name,
               toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay, ifNull(a.value, 0.) AS number, toUInt32(cityHash64(a.event_name, a.event_id) % 4294967296) AS key_hash,
               a.occurred_at AS occurred_at
        FROM xp.attributed_events AS a
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {event_names:Array(String)}
          AND a.attributed_at >= {watermark:DateTime64(3, 'UTC')}
    ),
    by_variation AS
    (
        SELECT unit_id, variation_id, [toUInt32(countIf(event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[2] AND ({cell_windows:Array(Float64)}[2] = 0 OR delay <= {cell_windows:Array(Float64)}[2] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[3] AND ({cell_windows:Array(Float64)}[3] = 0 OR delay <= {cell_windows:Array(Float64)}[3] * 1000)))] AS counts, [sumIf(number, event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))] AS totals,
               groupArray(key_hash) AS keys, max(occurred_at) AS newest
        FROM fresh
        GROUP BY unit_id, variation_id
    ),
    delta AS
    (
        SELECT unit_id, groupArray(variation_id) AS variations, groupArray(counts) AS counts_by,
               groupArray(totals) AS totals_by, arrayFlatten(groupArray(keys)) AS all_keys,
               max(newest) AS newest
        FROM by_variation
        GROUP BY unit_id
    )
SELECT
    kind,
    segment,
    variation_id,
    toUInt64(count()) AS units,
    sumForEach(v) AS sums,
    sumForEach(arrayMap(t -> t * t, v)) AS squares,
    [sum(v[2] * v[4])] AS crosses,
    arraySort(groupArrayIf(unit, kind = 1)) AS recompute,
    max(newest) AS newest
FROM
(
    SELECT
        kind, unit, newest,
        if({dimension:String} = '', '', attributes[{dimension:String}]) AS segment,
        variation_id,
        [toFloat64(counts[1] > 0), totals[1], toFloat64(counts[2]), toFloat64(counts[3])] AS v
    FROM
    (
        SELECT 0 AS kind, '' AS unit, toDateTime64(0, 3, 'UTC') AS newest, variation_id, eligible, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals
        FROM xp.unit_values FINAL
        WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}
          AND unit_id NOT IN (SELECT unit_id FROM fresh) AND unit_id NOT IN (SELECT unit_id FROM moved)
        UNION ALL
        SELECT
            if(s.unit_id = '' OR length(arrayDistinct(d.all_keys)) != length(d.all_keys)
               OR hasAny(s.folded, d.all_keys) OR d.unit_id IN (SELECT unit_id FROM moved), 1, 0) AS kind,
            d.unit_id AS unit, d.newest AS newest, s.variation_id AS variation_id, s.eligible AS eligible,
            s.first_exposed_at AS first_exposed_at, s.attributes AS attributes,
            CAST(arrayResize(s.counts, 3) + arrayResize(d.counts_by[indexOf(d.variations, s.variation_id)], 3), 'Array(UInt32)') AS counts,
            arrayResize(s.totals, 1) + arrayResize(d.totals_by[indexOf(d.variations, s.variation_id)], 1) AS totals,
            s.covariate_counts AS covariate_counts, s.covariate_totals AS covariate_totals
        FROM
        (
            SELECT unit_id, variation_id, eligible, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, folded
            FROM xp.unit_values FINAL
        WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String} AND unit_id IN (SELECT unit_id FROM fresh)
        ) AS s
        RIGHT JOIN delta AS d ON d.unit_id = s.unit_id
        UNION ALL
        SELECT 1, unit_id, toDateTime64(0, 3, 'UTC'), 0, false, toDateTime64(0, 3, 'UTC'),
               CAST(map(), 'Map(String, String)'), CAST([], 'Array(UInt32)'), CAST([], 'Array(Float64)'),
               CAST([], 'Array(UInt32)'), CAST([], 'Array(Float64)')
        FROM moved
        WHERE unit_id NOT IN (SELECT unit_id FROM fresh)
    )
    WHERE kind = 1 OR (eligible AND first_exposed_at >= {since:DateTime64(3, 'UTC')}
      AND first_exposed_at < {until:DateTime64(3, 'UTC')})
)
GROUP BY kind, segment, variation_id
ORDER BY kind, segment, variation_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
