
INSERT INTO xp.unit_values (experiment_key, plan_key, unit_id, variation_id, eligible, multiple_variations,
    overridden, first_exposed_at, attributes, counts, totals, covariate_counts, covariate_totals, folded,
    version)
WITH
    moved AS
    (
        SELECT unit_id FROM xp.exposures WHERE experiment_key = {experiment:String} AND ingested_at >= {watermark:DateTime64(3, 'UTC')}
    ),
    fresh AS
    (
        SELECT a.unit_id AS unit_id, a.variation_id AS variation_id, a.event_name AS event_name,
               toFloat64(dateDiff('millisecond', a.first_exposed_at, a.occurred_at)) AS delay, ifNull(a.value, 0.) AS number, toUInt32(cityHash64(a.event_name, a.event_id) % 4294967296) AS key_hash
        FROM xp.attributed_events AS a
        WHERE a.experiment_key = {experiment:String}
          AND a.event_name IN {event_names:Array(String)}
          AND a.attributed_at >= {watermark:DateTime64(3, 'UTC')}
          AND a.unit_id NOT IN (SELECT unit_id FROM moved)
    ),
    by_variation AS
    (
        SELECT unit_id, variation_id, [toUInt32(countIf(event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[2] AND ({cell_windows:Array(Float64)}[2] = 0 OR delay <= {cell_windows:Array(Float64)}[2] * 1000))), toUInt32(countIf(event_name = {cell_events:Array(String)}[3] AND ({cell_windows:Array(Float64)}[3] = 0 OR delay <= {cell_windows:Array(Float64)}[3] * 1000)))] AS counts, [sumIf(number, event_name = {cell_events:Array(String)}[1] AND ({cell_windows:Array(Float64)}[1] = 0 OR delay <= {cell_windows:Array(Float64)}[1] * 1000))] AS totals,
               groupArray(key_hash) AS keys
        FROM fresh
        GROUP BY unit_id, variation_id
    ),
    delta AS
    (
        SELECT unit_id, groupArray(variation_id) AS variations, groupArray(counts) AS counts_by,
               groupArray(totals) AS totals_by, groupArray(keys) AS keys_by, arrayFlatten(keys_by) AS all_keys
        FROM by_variation
        GROUP BY unit_id
    )
SELECT
    {experiment:String}, {plan_key:String}, s.unit_id, s.variation_id, s.eligible, s.multiple_variations,
    s.overridden, s.first_exposed_at, s.attributes,
    arrayMap(j -> toUInt32(s.counts[j] + d.counts_by[i][j]), range(1, 4)),
    arrayMap(j -> s.totals[j] + d.totals_by[i][j], range(1, 2)),
    s.covariate_counts, s.covariate_totals,
    arrayConcat(s.folded, d.keys_by[indexOf(d.variations, s.variation_id) AS i]),
    {version:UInt64}
FROM
(
    SELECT unit_id, variation_id, eligible, multiple_variations, overridden, first_exposed_at, attributes,
           counts, totals, covariate_counts, covariate_totals, folded
    FROM xp.unit_values FINAL
    WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}
) AS s
INNER JOIN delta AS d ON d.unit_id = s.unit_id
WHERE length(arrayDistinct(d.all_keys)) = length(d.all_keys) AND NOT hasAny(s.folded, d.all_keys)
SETTINGS optimize_move_to_prewhere_if_final = 1
