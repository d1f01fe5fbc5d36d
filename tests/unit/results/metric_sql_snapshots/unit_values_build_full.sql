
INSERT INTO xp.unit_values (experiment_key, plan_key, unit_id, variation_id, eligible, multiple_variations,
    overridden, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, folded,
    version)
WITH
    units AS
    (
        SELECT unit_id, argMinMerge(first_variation_id) AS variation_id,
               min(first_exposed_at) AS first_exposure,
               min(min_variation_id) != max(max_variation_id) AS multiple,
               max(overridden) != 0 AS overridden_
        FROM xp.unit_exposures
        WHERE experiment_key = {experiment:String}
        GROUP BY unit_id
    ),
    first_attributes AS
    (
        SELECT unit_id, argMin(attributes, exposed_at) AS attributes
        FROM xp.exposures
        WHERE experiment_key = {experiment:String}
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
    ),
    per_unit AS
    (
        SELECT unit_id, variation_id, [toUInt32(countIf(event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[2] AND ({cell_windows:Array(Float64)}[2] = 0 OR delay <= {cell_windows:Array(Float64)}[2] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[3] AND ({cell_windows:Array(Float64)}[3] = 0 OR delay <= {cell_windows:Array(Float64)}[3] * 1000)))] AS counts, [sumIf(number, event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))] AS totals,
               groupArray(key_hash) AS folded
        FROM matched
        GROUP BY unit_id, variation_id
    )
SELECT
    {experiment:String}, {plan_key:String}, e.unit_id, e.variation_id,
    NOT e.multiple AND NOT e.overridden_, e.multiple, e.overridden_, e.first_exposure, s.attributes,
    u.counts, u.totals, CAST([], 'Array(UInt32)'), CAST([], 'Array(Float64)'), u.folded, {version:UInt64}
FROM units AS e
LEFT JOIN per_unit AS u ON u.unit_id = e.unit_id AND u.variation_id = e.variation_id
LEFT JOIN first_attributes AS s ON s.unit_id = e.unit_id
SETTINGS join_use_nulls = 0, optimize_move_to_prewhere_if_final = 1
